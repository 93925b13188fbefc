"""End to end (issue 19): one workflow serving many tenants through a keychain, on a real
``fulmen server`` and a real ``fulmen worker``, on SQLite and on PostgreSQL.

A keychain maps a webhook body's ``site_id`` to one of four credentials, with a default. The
job reads its configuration and returns a digest of its token (a digest is not masked), and
prints the token itself (which is). Three inputs pick their own credential, a fourth the
default; each run says what it chose; the worker never saw another credential's value. A run
whose site matches nothing once the default is gone fails before reaching a worker, with an
error naming the keychain, its path and the value, and nothing else of its input.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fulmen_testing.coordinator import pg_database
from fulmen_testing.e2e import Api, system

pytestmark = pytest.mark.anyio

TOKENS = {
    "north": "tok-north-4c1f9e2a7b",
    "south": "tok-south-8d3b6a0c5e",
    "east": "tok-east-2f7e1d9b4a6",
    "default": "tok-default-5a9c3e7f1b",
}
JOB = """
import hashlib

@fn
def call_the_tenant(state):
    token = state["configuration"]["token"]
    print("calling with", token)
    return {"data": {"digest": hashlib.sha256(token.encode()).hexdigest()}}
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def database(backend: str) -> Iterator[dict[str, str]]:
    if backend == "sqlite":
        yield {}
        return
    key = base64.b64encode(bytes(range(32))).decode()  # PostgreSQL: the operator's key
    with pg_database() as url:
        yield {"FULMEN_DATABASE_URL": url, "FULMEN_CREDENTIAL_KEY": key}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_keychain_picks_each_tenants_credential(tmp_path: Path, backend: str) -> None:
    with database(backend) as settings:
        async with system(tmp_path, coordinator=settings) as (_, _, api):
            await _exercise(api)


async def _exercise(api: Api) -> None:
    http, h = api.http, api.headers
    project = (await http.post("/api/projects", json={"name": "tenants"}, headers=h)).json()
    base = f"/api/projects/{project['id']}"
    ids = {}
    for name, token in TOKENS.items():
        made = await http.post(
            f"{base}/credentials", json={"name": name, "body": {"token": token}}, headers=h
        )
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
    keychain = {
        "name": "sites",
        "path": "$.data.site_id",
        "entries": {"north": ids["north"], "south": ids["south"], "7": ids["east"]},
        "default_credential_id": ids["default"],
    }
    made = await http.post(f"{base}/keychains", json=keychain, headers=h)
    assert made.status_code == 201, made.text
    keychain_id = made.json()["id"]
    document = {
        "name": "per tenant",
        "jobs": [{"id": "call", "adaptor": "common", "body": JOB, "keychain_id": keychain_id}],
        "triggers": [{"id": "hook-tenants", "type": "webhook"}],
        "edges": [{"source_trigger_id": "hook-tenants", "target_job_id": "call"}],
    }
    made = await http.post(f"{base}/workflows", json=document, headers=h)
    assert made.status_code == 201, made.text
    assert made.json()["jobs"][0]["keychain_id"] == keychain_id

    cases = [("north", "north", "north"), ("south", "south", "south"), (7, "east", "7")]
    cases.append(("west", "default", None))
    run_ids = [
        (await http.post("/i/hook-tenants", json={"site_id": site})).json()["run_id"]
        for site, _, _ in cases
    ]
    for run_id, (_, tenant, matched) in zip(run_ids, cases, strict=True):
        run = await api.finished(run_id, timeout=60)
        assert run["state"] == "success", run
        [step] = run["steps"]
        output = await api.dataclip(step["output_dataclip_id"])
        assert output["data"]["digest"] == digest(TOKENS[tenant])
        assert run["keychains"] == [
            {
                "keychain_id": keychain_id,
                "keychain_name": "sites",
                "path": "$.data.site_id",
                "credential_id": ids[tenant],
                "matched": matched,
                "by_default": matched is None,
            }
        ]
        messages = [line["message"] for line in await api.logs(run_id)]
        assert "calling with ***" in messages
        assert not any(token in json.dumps(messages) for token in TOKENS.values())

    # Without a default, a site that matches nothing fails before any worker sees it.
    keychain["default_credential_id"] = None
    changed = await http.put(f"{base}/keychains/{keychain_id}", json=keychain, headers=h)
    assert changed.status_code == 200, changed.text
    hooked = await http.post("/i/hook-tenants", json={"site_id": "atlantis", "pin": "0451"})
    run = await api.finished(hooked.json()["run_id"])
    assert (run["state"], run["error_type"]) == ("exception", "CredentialError")
    assert run["error_message"] == (
        "keychain 'sites' chose no credential: the value 'atlantis' at $.data.site_id "
        "matches none of its values and it has no default credential"
    )
    assert run["steps"] == [] and run["worker_name"] is None
    assert run["keychains"][0]["credential_id"] is None

    # What a keychain uses cannot go; the keychain cannot while a job names it.
    refused = await http.delete(f"/api/credentials/{ids['north']}", headers=h)
    assert refused.status_code == 409 and "keychain" in refused.json()["error"]["message"]
    refused = await http.delete(f"/api/keychains/{keychain_id}", headers=h)
    assert refused.status_code == 409 and "used by job call" in refused.json()["error"]["message"]
