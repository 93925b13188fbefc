"""The keychains REST API (issue 19) on a real coordinator: what it answers, what it refuses
(each refusal a stable code naming its field, and nothing saved), and what the audit trail
keeps of each change (credential ids, never a value)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.coordinator import api_token, serve, sqlite_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        auth = {"Authorization": f"Bearer {await api_token(store)}"}
        async with httpx2.AsyncClient(base_url=served.base_url, headers=auth) as client:
            yield client


async def made(http: httpx2.AsyncClient, path: str, document: dict[str, Any]) -> dict[str, Any]:
    answer = await http.post(path, json=document)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def world(http: httpx2.AsyncClient) -> dict[str, str]:
    ids = {}
    for name in ("p", "q"):
        ids[name] = (await made(http, "/api/projects", {"name": name}))["id"]
    for name, project in (("north", "p"), ("south", "p"), ("other", "q")):
        body = {"name": name, "body": {"token": f"{name}-token-0123456789"}}
        ids[name] = (await made(http, f"/api/projects/{ids[project]}/credentials", body))["id"]
    return ids


async def test_a_keychain_is_made_read_replaced_and_audited(http: httpx2.AsyncClient) -> None:
    ids = await world(http)
    base = f"/api/projects/{ids['p']}/keychains"
    document = {"name": "sites", "path": "$.data.site", "entries": {"n": ids["north"]}}
    keychain = await made(http, base, document)
    assert keychain["default_credential_id"] is None
    assert (await http.get(f"/api/keychains/{keychain['id']}")).json() == keychain
    listed = (await http.get(base)).json()["items"]
    assert [k["id"] for k in listed] == [keychain["id"]]
    replaced = await http.put(
        f"{base}/{keychain['id']}",
        json={**document, "entries": {"s": ids["south"]}, "default_credential_id": ids["north"]},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["entries"] == {"s": ids["south"]}

    trail = (await http.get("/api/audit", params={"action": "keychain"})).json()["items"]
    assert [r["action"] for r in trail] == ["keychain.updated", "keychain.created"]
    assert trail[0]["before"]["entries"] == {"n": ids["north"]}
    assert trail[0]["after"]["default_credential_id"] == ids["north"]
    assert "token-0123456789" not in str(trail)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"path": "data.site"}, "bad_path", "path"),
        ({"path": "$..site"}, "bad_path", "path"),
        # "other": a credential of project q
        ({"entries": {"n": "other"}}, "unknown_credential", "entries.n"),
        ({"default_credential_id": "other"}, "unknown_credential", "default_credential_id"),
        ({"default_credential_id": "nowhere"}, "unknown_credential", "default_credential_id"),
    ],
)
async def test_bad_keychains_are_422_naming_the_field(
    http: httpx2.AsyncClient, change: dict[str, Any], code: str, field: str
) -> None:
    ids = await world(http)
    document: dict[str, Any] = {"name": "sites", "path": "$.data.site", **change}
    for key in ("default_credential_id",):
        if document.get(key) == "other":
            document[key] = ids["other"]  # a credential of project q
    if document.get("entries") == {"n": "other"}:
        document["entries"] = {"n": ids["other"]}
    answer = await http.post(f"/api/projects/{ids['p']}/keychains", json=document)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert (await http.get(f"/api/projects/{ids['p']}/keychains")).json()["items"] == []


async def test_what_keychains_and_jobs_may_name(http: httpx2.AsyncClient) -> None:
    ids = await world(http)
    document = {"name": "sites", "path": "$.data.site", "entries": {"n": ids["north"]}}
    keychain = await made(http, f"/api/projects/{ids['p']}/keychains", document)
    twice = await http.post(f"/api/projects/{ids['p']}/keychains", json=document)
    assert twice.status_code == 409 and twice.json()["error"]["field"] == "name"
    moved = await http.put(
        f"/api/projects/{ids['q']}/keychains/{keychain['id']}",
        json={"name": "sites", "path": "$.a"},
    )
    assert moved.status_code == 409 and "another project" in moved.json()["error"]["message"]

    def workflow(**job: str) -> dict[str, Any]:
        return {"name": "w", "jobs": [{"body": "fn(lambda s: s)", "adaptor": "common", **job}]}

    elsewhere = await http.post(
        f"/api/projects/{ids['q']}/workflows", json=workflow(keychain_id=keychain["id"])
    )
    assert elsewhere.status_code == 404, elsewhere.text
    assert elsewhere.json()["error"]["field"] == "keychain_id"
    both = await http.post(
        f"/api/projects/{ids['p']}/workflows",
        json=workflow(keychain_id=keychain["id"], credential_id=ids["north"]),
    )
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]
    saved = await http.post(
        f"/api/projects/{ids['p']}/workflows", json=workflow(keychain_id=keychain["id"])
    )
    assert saved.status_code == 201 and saved.json()["jobs"][0]["keychain_id"] == keychain["id"]

    used = await http.delete(f"/api/credentials/{ids['north']}")
    assert used.status_code == 409
    assert used.json()["error"]["message"] == (
        f"credential {ids['north']} can be chosen by keychain {keychain['id']}; "
        "change those keychains first"
    )
    named = await http.delete(f"/api/keychains/{keychain['id']}")
    assert named.status_code == 409
    assert (await http.delete("/api/keychains/nope")).status_code == 404
