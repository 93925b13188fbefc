"""The audit trail through the REST API and the dashboard's forms, on a real coordinator
(uvicorn on loopback, SQLite): a workflow edit recorded with its diff, credentials recorded
by name and use and never by value (the secret is nowhere in the table), a refused attempt
recorded, sign-ins recorded, runs started, cancelled and rerun by hand recorded, exports that
parse back (JSON lines, CSV without formulas), and the client's address as a trusted proxy
names it, and only then."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from html import unescape
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx2
import pytest

from fulmen.coordinator import audit
from fulmen.coordinator.api.auth import issue
from fulmen.store import NewUser, Role
from fulmen_testing.coordinator import seed, sqlite_store
from fulmen_testing.operator import Site, site

pytestmark = pytest.mark.anyio

SECRET = "correct-horse-battery-staple-81"
OTHER_SECRET = "tr0ub4dor-and-3-more-words-92"
FORM_SECRET = "a-value-typed-into-the-form-73"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def trail(tmp_path: Path) -> AsyncIterator[Site]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, site(store) as s:
        s.seeded = await seed(store)
        yield s


async def records(s: Site, path: str = "/api/audit", **params: str) -> list[dict[str, Any]]:
    page = await s.api("GET", path, params={"limit": "500", **params})
    items: list[dict[str, Any]] = page["items"]
    return items


def editable(document: dict[str, Any]) -> dict[str, Any]:
    """What a PUT takes of what a GET answered."""
    keys = ("id", "name", "concurrency", "retry", "jobs", "triggers", "edges")
    return {key: document[key] for key in keys}


async def test_a_workflow_edit_is_recorded_with_its_diff(trail: Site) -> None:
    assert trail.seeded is not None
    project_id, workflow_id = trail.seeded.project_id, trail.seeded.workflow_id
    before = await trail.api("GET", f"/api/workflows/{workflow_id}")
    body = editable(before)
    body["jobs"][0]["body"] = "fn(lambda s: {**s, 'edited': True})"
    put = f"/api/workflows/{workflow_id}?expected_version=1"
    await trail.api("PUT", put, json=body)

    (record,) = await records(trail, f"/api/projects/{project_id}/audit", action="workflow")
    assert record["action"] == "workflow.updated"
    assert record["actor"] == {"kind": "operator", "id": record["actor"]["id"], "name": "tests",
                               "address": "127.0.0.1"}  # fmt: skip
    assert record["target"] == {"type": "workflow", "id": workflow_id, "name": "chain"}
    assert record["project_id"] == project_id
    assert record["before"]["jobs"][0]["body"] == "fn(lambda s: s)"
    assert record["after"]["jobs"][0]["body"] == "fn(lambda s: {**s, 'edited': True})"
    assert (record["before"]["version"], record["after"]["version"]) == (1, 2)
    changed = [line for line in record["diff"].splitlines() if line[:1] in "+-"]
    assert changed == [
        "--- workflow chain (before)",
        "+++ workflow chain (after)",
        "-    body: 'fn(lambda s: s)'",
        "+    body: 'fn(lambda s: {**s, ''edited'': True})'",
        "-version: 1",
        "+version: 2",
    ]
    assert "inserted_at" not in record["after"] and "snapshot_id" not in record["after"]

    # a new workflow, and a deleted one, are recorded whole
    job = {**body["jobs"][0], "id": str(uuid4())}
    second = {**body, "id": str(uuid4()), "name": "second", "jobs": [job], "triggers": [],
              "edges": []}  # fmt: skip
    made = await trail.api("POST", f"/api/projects/{project_id}/workflows", 201, json=second)
    await trail.api("DELETE", f"/api/workflows/{made['id']}", 204)
    created, deleted = await records(trail, action="workflow", target=made["id"])
    assert (created["action"], deleted["action"]) == ("workflow.deleted", "workflow.created")
    assert created["before"]["name"] == "second" and created["after"] is None


async def test_credentials_are_recorded_by_name_and_use_never_by_value(
    trail: Site, tmp_path: Path
) -> None:
    assert trail.seeded is not None
    project_id = trail.seeded.project_id
    path = f"/api/projects/{project_id}/credentials"
    made = await trail.api("POST", path, 201, json={"name": "db", "body": {"password": SECRET}})
    await trail.api(
        "PUT", f"{path}/{made['id']}", json={"name": "db", "body": {"password": OTHER_SECRET}}
    )
    # the seeded credential, used by a job, changed through the dashboard's form
    signed = await trail.http.post(
        "/ui/login", data={"token": trail.token}, headers={"Origin": trail.served.base_url}
    )
    assert signed.status_code == 303
    form = await trail.http.post(
        f"/ui/credentials/{project_id}/{trail.seeded.credential_id}/value",
        data={"body": json.dumps({"password": FORM_SECRET})},
        headers={"Origin": trail.served.base_url},
    )
    assert form.status_code == 303, form.text
    await trail.api("DELETE", f"/api/credentials/{made['id']}", 204)

    found = await records(trail, f"/api/projects/{project_id}/audit", action="credential")
    assert [(r["action"], r["target"]["name"]) for r in found] == [
        ("credential.deleted", "db"),
        ("credential.updated", "api"),
        ("credential.updated", "db"),
        ("credential.created", "db"),
    ]
    used = found[1]["after"]["used_by"]
    assert [(u["workflow"], u["job"]) for u in used] == [("chain", "first")]
    assert found[3]["detail"] == {"value": "set"} and found[3]["before"] is None

    # the values are nowhere: not in the table, not in the listing, not in the exports
    with closing(sqlite3.connect(tmp_path / "fulmen.db")) as conn:
        rows = conn.execute("SELECT * FROM audit_records").fetchall()
    dumped = repr(rows)
    listed = (await trail.http.get("/api/audit", headers=trail.auth)).text
    exported = ""
    for kind in ("jsonl", "csv"):
        exported += (await trail.http.get(f"/api/audit?format={kind}", headers=trail.auth)).text
    for secret in (SECRET, OTHER_SECRET, FORM_SECRET, "s3cr3t-pw"):
        for where in (dumped, listed, exported):
            assert secret not in where


async def test_a_refused_attempt_is_recorded(trail: Site) -> None:
    assert trail.seeded is not None
    project_id = trail.seeded.project_id
    viewer, _ = await issue(
        trail.store, audit.command_line(), "read-only bot", project_id=project_id, role=Role.VIEWER
    )
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    refused = await trail.http.get(f"/api/projects/{project_id}/audit", headers=as_viewer)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert (await trail.http.get("/api/audit", headers=as_viewer)).status_code == 403
    # the same viewer on the dashboard: a page saying so, and a record
    signed = await trail.http.post(
        "/ui/login", data={"token": viewer}, headers={"Origin": trail.served.base_url}
    )
    assert signed.status_code == 303
    page = await trail.http.get(f"/ui/projects/{project_id}/audit")
    assert page.status_code == 403
    assert "takes the admin role" in unescape(page.text)

    found = await records(trail, action="access.refused")
    assert [(r["target"]["name"] or r["target"]["id"], r["project_id"]) for r in found] == [
        (f"GET /ui/projects/{project_id}/audit", project_id),
        ("GET /api/audit", None),
        (f"GET /api/projects/{project_id}/audit", project_id),
    ]
    first = found[-1]
    assert first["actor"]["kind"] == "service" and first["actor"]["name"] == "read-only bot"
    assert first["detail"]["permission"] == "manage"
    assert "you are a viewer of project" in first["detail"]["message"]
    # a refusal is its project's record: its admins see it
    mine = await records(trail, f"/api/projects/{project_id}/audit", action="access")
    assert len(mine) == 2


async def test_sign_ins_are_recorded_for_the_instance(trail: Site) -> None:
    assert trail.seeded is not None
    origin = {"Origin": trail.served.base_url}
    async with httpx2.AsyncClient(base_url=trail.served.base_url) as browser:
        bad = await browser.post("/ui/login", data={"token": "fmn_abc_nope"}, headers=origin)
        assert bad.status_code == 401
        junk = await browser.post("/ui/login", data={"token": "hunter2"}, headers=origin)
        assert junk.status_code == 401
        elsewhere = {"Origin": "https://evil.example"}
        cross = await browser.post("/ui/login", data={"token": trail.token}, headers=elsewhere)
        assert cross.status_code == 403
        good = await browser.post("/ui/login", data={"token": trail.token}, headers=origin)
        assert good.status_code == 303

    found = await records(trail, action="sign_in")
    assert [(r["action"], r["actor"]["kind"], r["actor"]["name"], r["detail"]) for r in found] == [
        ("sign_in.succeeded", "operator", "tests", {"method": "token"}),
        ("sign_in.failed", "anonymous", f"token {trail.token.split('_')[1]}",
         {"method": "token", "reason": "cross_site"}),
        ("sign_in.failed", "anonymous", "a malformed token",
         {"method": "token", "reason": "bad_token"}),
        ("sign_in.failed", "anonymous", "token abc", {"method": "token", "reason": "bad_token"}),
    ]  # fmt: skip
    assert {r["actor"]["address"] for r in found} == {"127.0.0.1"}
    assert all(r["project_id"] is None for r in found)
    assert "hunter2" not in json.dumps(found)
    project = f"/api/projects/{trail.seeded.project_id}/audit"
    assert await records(trail, project, action="sign_in") == []


async def test_runs_started_cancelled_and_rerun_by_hand_are_recorded(trail: Site) -> None:
    assert trail.seeded is not None
    workflow_id = trail.seeded.workflow_id
    started = await trail.api("POST", f"/api/workflows/{workflow_id}/runs", 201, json={})
    await trail.api("POST", f"/api/runs/{started['run_id']}/cancel")
    reruns = await trail.api(
        "POST", "/api/work_orders/rerun", 201, json={"work_order_ids": [started["work_order_id"]]}
    )
    keyed = {"Idempotency-Key": "once-only", **trail.auth}
    for _ in range(2):  # the second is a replay: no run, no record
        again = await trail.http.post(f"/api/workflows/{workflow_id}/runs", json={}, headers=keyed)
        assert again.status_code == 201

    found = await records(trail, f"/api/projects/{trail.seeded.project_id}/audit")
    assert [(r["action"], r["target"]["type"]) for r in found] == [
        ("run.started", "run"),
        ("work_order.rerun", "work_order"),
        ("run.cancel_requested", "run"),
        ("run.started", "run"),
    ]
    assert found[3]["after"]["run_id"] == started["run_id"]
    assert found[2]["detail"] == {"cancelled": "now"}
    assert found[1]["after"]["run_id"] == reruns["runs"][0]["run_id"]
    assert found[0]["after"]["workflow_id"] == workflow_id


async def test_exports_parse_back_and_hold_no_formula(trail: Site) -> None:
    assert trail.seeded is not None
    project_id = trail.seeded.project_id
    await trail.api("PUT", f"/api/projects/{project_id}", json={"name": '=HYPERLINK("x")'})
    await trail.api("PUT", f"/api/projects/{project_id}", json={"name": "tests", "concurrency": 2})
    listed = await records(trail, f"/api/projects/{project_id}/audit")
    assert [r["action"] for r in listed] == ["project.updated", "project.updated"]

    url = f"/api/projects/{project_id}/audit"
    jsonl = await trail.http.get(url, params={"format": "jsonl"}, headers=trail.auth)
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert re.fullmatch(
        rf'attachment; filename="fulmen-audit-project-{project_id}-\d{{8}}T\d{{6}}Z\.jsonl"',
        jsonl.headers["content-disposition"],
    )
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert lines == [{**r, "diff": None} for r in listed]

    exported = await trail.http.get(url, params={"format": "csv"}, headers=trail.auth)
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(row["id"]) for row in rows] == [r["id"] for r in listed]
    assert [row["action"] for row in rows] == ["project.updated", "project.updated"]
    assert rows[0]["target_name"] == "tests"
    assert rows[1]["target_name"] == '\'=HYPERLINK("x")'  # text in a spreadsheet, never run
    assert json.loads(rows[0]["after"])["concurrency"] == 2
    assert json.loads(rows[0]["before"])["name"] == '=HYPERLINK("x")'  # JSON text: exact

    # filters hold for exports too, and a filter that is not one is refused before any byte
    only = await trail.http.get(
        url, params={"format": "jsonl", "action": "workflow"}, headers=trail.auth
    )
    assert only.text == ""
    bad = await trail.http.get(url, params={"since": "yesterday"}, headers=trail.auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_time"
    bad = await trail.http.get(url, params={"action": "drop table"}, headers=trail.auth)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_action"


async def test_the_address_is_the_peer_unless_a_trusted_proxy_names_one(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.5"}
    # this test's requests come from 127.0.0.1: a proxy on the same host, trusted by default
    cases = {
        "by default": (("127.0.0.1",), "203.0.113.5"),
        "none trusted": ((), "127.0.0.1"),
        "another proxy": (("10.0.0.0/8",), "127.0.0.1"),
    }
    for case, (trusted, expected) in cases.items():
        async with (
            sqlite_store(str(tmp_path / f"{case}.db")) as store,
            site(store, trusted_proxies=trusted) as s,
        ):
            made = await s.http.post(
                "/api/projects", json={"name": "p"}, headers={**s.auth, **forwarded}
            )
            assert made.status_code == 201, made.text
            (record,) = await records(s, action="project.created")
            assert record["actor"]["address"] == expected, case


async def test_tokens_made_and_revoked_are_recorded_never_the_token(trail: Site) -> None:
    origin = {"Origin": trail.served.base_url}
    await trail.http.post("/ui/login", data={"token": trail.token}, headers=origin)
    made = await trail.http.post("/ui/tokens", data={"name": "ci"}, headers=origin)
    assert made.status_code == 201
    (secret,) = set(re.findall(r"fmn_[A-Za-z0-9]+_[A-Za-z0-9_-]+", made.text)) - {trail.token}
    token_id = secret.split("_")[1]
    revoked = await trail.http.post(f"/ui/tokens/{token_id}/revoke", headers=origin)
    assert revoked.status_code == 303

    found = await records(trail, action="token")
    assert [(r["action"], r["target"]["id"], r["target"]["name"]) for r in found] == [
        ("token.revoked", token_id, "ci"),
        ("token.created", token_id, "ci"),
    ]
    assert found[1]["after"] == {
        "id": token_id,
        "name": "ci",
        "user_id": None,
        "project_id": None,
        "role": None,
    }
    assert found[0]["before"] == found[1]["after"] and found[0]["after"] is None
    assert secret not in json.dumps(found) and secret.split("_", 2)[2] not in json.dumps(found)


async def test_a_members_role_changes_are_recorded(trail: Site) -> None:
    """Added, given another role, removed through the REST API's members routes, each
    recorded with the role before and after, by whoever did it."""
    assert trail.seeded is not None
    project_id = trail.seeded.project_id
    bo = await trail.store.create_user(NewUser("bo@example.org"))
    members = f"/api/projects/{project_id}/members"
    for method, path, body in (
        ("POST", members, {"email": "bo@example.org", "role": "editor"}),
        ("PUT", f"{members}/{bo.id}", {"role": "admin"}),
        ("DELETE", f"{members}/{bo.id}", None),
    ):
        done = await trail.http.request(method, path, json=body, headers=trail.auth)
        assert done.status_code in (200, 201, 204), done.text
    found = await records(trail, f"/api/projects/{project_id}/audit", action="member")
    bo_as = {"user_id": bo.id, "email": "bo@example.org"}
    assert [(r["action"], r["before"], r["after"]) for r in found] == [
        ("member.removed", {**bo_as, "role": "admin"}, None),
        ("member.role_changed", {**bo_as, "role": "editor"}, {**bo_as, "role": "admin"}),
        ("member.added", None, {**bo_as, "role": "editor"}),
    ]
    assert found[0]["actor"]["kind"] == "operator"


async def test_instance_and_alert_settings_changes_are_recorded(trail: Site) -> None:
    """The instance's settings and a project's alert channels, rules and digest are settings
    too: each change recorded with before and after, a webhook's secret never."""
    assert trail.seeded is not None
    project_id, workflow_id = trail.seeded.project_id, trail.seeded.workflow_id
    await trail.api("PUT", "/api/instance/settings", json={"require_mfa": True})
    alerts = f"/api/projects/{project_id}"
    mail = await trail.api(
        "POST", f"{alerts}/alert_channels", 201,
        json={"name": "ops", "type": "email", "recipients": ["ops@example.org"]},
    )  # fmt: skip
    hook = await trail.api(
        "POST", f"{alerts}/alert_channels", 201,
        json={"name": "pager", "type": "webhook", "url": "https://hooks.example.org/x"},
    )  # fmt: skip
    rule = {"outcomes": ["failed"], "channel_ids": [mail["id"]]}
    await trail.api("PUT", f"{alerts}/workflows/{workflow_id}/alert_rule", json=rule)
    await trail.api(
        "PUT", f"{alerts}/workflows/{workflow_id}/alert_rule", json={**rule, "period_seconds": 60}
    )
    await trail.api(
        "PUT", f"{alerts}/alert_digest", json={"frequency": "daily", "channel_ids": [mail["id"]]}
    )
    await trail.api("DELETE", f"{alerts}/workflows/{workflow_id}/alert_rule", 204)
    await trail.api("DELETE", f"{alerts}/alert_channels/{hook['id']}", 204)

    instance = await records(trail, action="instance_settings")
    assert [(r["before"], r["after"]) for r in instance] == [
        ({"require_mfa": False}, {"require_mfa": True})
    ]
    trail_of_project = await records(trail, f"/api/projects/{project_id}/audit")
    found = [r for r in trail_of_project if r["action"].startswith("alert_")]
    assert [r["action"] for r in found] == [
        "alert_channel.deleted",
        "alert_rule.deleted",
        "alert_digest.updated",
        "alert_rule.updated",
        "alert_rule.created",
        "alert_channel.created",
        "alert_channel.created",
    ]
    assert found[3]["before"]["period_seconds"] == 300
    assert found[3]["after"]["period_seconds"] == 60
    assert found[0]["before"]["url"] == "https://hooks.example.org/x"
    assert hook["secret"] not in str(found)  # a webhook's secret is shown once, never recorded
