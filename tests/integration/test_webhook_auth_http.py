"""Webhook authentication (issue 8) over loopback, on SQLite and PostgreSQL: methods managed
through the REST API, attached to a trigger; a request failing every attached method gets 401
and leaves nothing behind; a disabled trigger is 404 whatever the credentials; secrets are
never shown again, stored in the request's dataclip, or logged."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fulmen.store import RunFilter, SQLStore
from fulmen_testing.coordinator import Seeded, seed
from fulmen_testing.operator import BACKENDS, Site, site, store_at

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
async def hooked(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    async with store_at(request.param, tmp_path) as (store, _):
        seeded = await seed(store)
        async with site(store) as s:
            s.seeded = seeded
            yield s


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def runs_of(store: SQLStore, seeded: Seeded) -> int:
    return len((await store.list_runs(RunFilter(workflow_id=seeded.workflow_id))).items)


async def methods(s: Site, seeded: Seeded) -> tuple[str, str, str]:
    """An API-key method (its key made by the coordinator) and a Basic one, both attached to
    the webhook: (api id, key, basic id)."""
    path = f"/api/projects/{seeded.project_id}/webhook_auth_methods"
    api = await s.api("POST", path, 201, json={"name": "partner", "auth_type": "api"})
    login = {"name": "legacy", "auth_type": "basic", "username": "hook", "password": PASSWORD}
    made = await s.api("POST", path, 201, json=login)
    assert made["api_key"] is None and len(api["api_key"]) == 64
    listed = await s.api("GET", path)
    assert [(m["name"], m["api_key"]) for m in listed["items"]] == [
        ("legacy", None),
        ("partner", None),
    ]
    attach = f"/api/triggers/{seeded.webhook_id}/webhook_auth_methods"
    attached = await s.api("PUT", attach, json={"method_ids": [api["id"], made["id"]]})
    assert sorted(m["id"] for m in attached["items"]) == sorted([api["id"], made["id"]])
    assert (await s.api("GET", attach))["items"] == attached["items"]
    return api["id"], api["api_key"], made["id"]


async def test_a_webhook_with_a_wrong_key_gets_401_and_creates_nothing(
    hooked: Site, caplog: pytest.LogCaptureFixture
) -> None:
    s = hooked
    assert s.seeded is not None
    caplog.set_level(logging.DEBUG)
    _, key, _ = await methods(s, s.seeded)
    url = f"/i/{s.seeded.webhook_id}"
    refused = [
        {},
        {"x-api-key": "wrong"},
        {"x-api-key": key[:-1] + ("0" if key[-1] != "0" else "1")},
        {"x-api-key": key + "0"},
        {"authorization": basic("hook", "wrong password")},
        {"authorization": basic("other", PASSWORD)},
        {"authorization": f"Bearer {key}"},
        {"authorization": "Basic !!not-base64!!"},
    ]
    for headers in refused:
        response = await s.http.post(url, json={"n": 1}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Basic")
    assert await runs_of(s.store, s.seeded) == 0

    by_key = await s.http.post(url, json={"n": 2}, headers={"x-api-key": key})
    by_login = await s.http.post(
        url, json={"n": 3}, headers={"authorization": basic("hook", PASSWORD)}
    )
    assert (by_key.status_code, by_login.status_code) == (200, 200)
    assert await runs_of(s.store, s.seeded) == 2
    run = (await s.store.get_run(by_key.json()["run_id"])).run
    stored = (await s.store.get_dataclip(run.dataclip_id or "")).request
    assert isinstance(stored, dict) and "x-api-key" not in stored["headers"]
    # The server's own log (the client library logs what it sends, at debug level).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("fulmen", "uvicorn"))
    )
    assert key not in logged and PASSWORD not in logged
    assert "request refused (wrong_credentials)" in logged
    assert "request refused (no_credentials)" in logged


async def test_a_disabled_trigger_is_404_and_a_trigger_without_methods_is_open(
    hooked: Site,
) -> None:
    s = hooked
    assert s.seeded is not None
    api_id, key, basic_id = await methods(s, s.seeded)
    url = f"/i/{s.seeded.webhook_id}"
    stored = await s.store.get_workflow(s.seeded.workflow_id)
    webhook, *others = stored.workflow.triggers
    disabled = dataclasses.replace(webhook, enabled=False)
    await s.store.replace_workflow(
        dataclasses.replace(stored.workflow, triggers=(disabled, *others))
    )
    response = await s.http.post(url, json={}, headers={"x-api-key": key})
    assert response.status_code == 404
    await s.store.replace_workflow(stored.workflow)  # enabled again, methods still attached
    assert (await s.http.post(url, json={})).status_code == 401

    await s.api("DELETE", f"/api/webhook_auth_methods/{api_id}", 204)
    await s.api("GET", f"/api/webhook_auth_methods/{api_id}", 404)
    assert (await s.http.post(url, json={}, headers={"x-api-key": key})).status_code == 401
    attach = f"/api/triggers/{s.seeded.webhook_id}/webhook_auth_methods"
    assert (await s.api("PUT", attach, json={"method_ids": []}))["items"] == []
    assert (await s.http.post(url, json={})).status_code == 200  # open again
    assert (await s.api("GET", f"/api/webhook_auth_methods/{basic_id}"))["name"] == "legacy"


async def test_what_the_webhook_auth_api_refuses(hooked: Site) -> None:
    s = hooked
    assert s.seeded is not None
    path = f"/api/projects/{s.seeded.project_id}/webhook_auth_methods"
    short = {"name": "x", "auth_type": "basic", "username": "u", "password": "short"}
    await s.api("POST", path, 422, json=short)
    await s.api("POST", path, 422, json={"name": "x", "auth_type": "bearer"})
    await s.api("POST", path, 422, json={"name": "x", "auth_type": "api", "password": PASSWORD})
    made = await s.api("POST", path, 201, json={"name": "x", "auth_type": "api"})
    await s.api("POST", path, 409, json={"name": "x", "auth_type": "api"})
    await s.api(
        "POST",
        "/api/projects/nope/webhook_auth_methods",
        404,
        json={"name": "x", "auth_type": "api"},
    )
    other = await s.api("POST", "/api/projects", 201, json={"name": "other"})
    theirs = await s.api(
        "POST",
        f"/api/projects/{other['id']}/webhook_auth_methods",
        201,
        json={"name": "theirs", "auth_type": "api"},
    )
    attach = f"/api/triggers/{s.seeded.webhook_id}/webhook_auth_methods"
    await s.api("PUT", attach, 404, json={"method_ids": [theirs["id"]]})
    await s.api("PUT", "/api/triggers/nope/webhook_auth_methods", 404, json={"method_ids": []})
    assert (await s.api("GET", attach))["items"] == []
    shown = await s.api("GET", f"/api/webhook_auth_methods/{made['id']}")
    assert shown["api_key"] is None and made["api_key"] not in str(shown)
