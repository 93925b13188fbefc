"""The operator's settings through the REST API (issue 8), on SQLite and PostgreSQL:
workflow versions (a stale save is a 409 naming both versions; each run says which version
it ran; every version can be read back), retention and retry settings as documents, and the
cron cursor: a cron run starting from the last successful run's final state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fulmen.coordinator.scheduler import Scheduler
from fulmen.reasons import ExitReason, Reason
from fulmen.store import RunCompletion, StepCompletion, StepStart
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import seed
from fulmen_testing.operator import BACKENDS, Site, site, store_at

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
async def s(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Site]:
    async with store_at(request.param, tmp_path, clock=clock) as (store, _):
        seeded = await seed(store, cron="* * * * *")
        async with site(store, clock=clock) as opened:
            opened.seeded = seeded
            yield opened


def editable(document: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "concurrency", "retry", "jobs", "triggers", "edges")
    return {key: document[key] for key in keys}


async def test_versions_conflicts_and_the_version_each_run_ran(s: Site) -> None:
    assert s.seeded is not None
    path = f"/api/workflows/{s.seeded.workflow_id}"
    v1 = await s.api("GET", path)
    first = (await s.http.post(f"/i/{s.seeded.webhook_id}", json={})).json()
    mine = {**editable(v1), "name": "mine"}
    theirs = {**editable(v1), "name": "theirs", "concurrency": 1}
    v2 = await s.api("PUT", path, json=theirs, params={"expected_version": 1})
    refused = await s.api("PUT", path, 409, json=mine, params={"expected_version": 1})
    assert refused["error"]["code"] == "stale_version"
    assert "version 2" in refused["error"]["message"] and "version 1" in refused["error"]["message"]
    assert (await s.api("GET", path))["name"] == "theirs"
    second = (await s.http.post(f"/i/{s.seeded.webhook_id}", json={})).json()

    runs = {r["id"]: r for r in (await s.api("GET", "/api/runs"))["items"]}
    assert runs[first["run_id"]]["snapshot_version"] == 1
    assert runs[second["run_id"]]["snapshot_version"] == 2
    old = await s.api("GET", f"/api/snapshots/{runs[first['run_id']]['snapshot_id']}")
    assert (old["version"], old["workflow"]["name"], old["workflow"]["concurrency"]) == (
        1,
        "chain",
        None,
    )
    assert old["id"] == v1["snapshot_id"] != v2["snapshot_id"]
    await s.api("GET", "/api/snapshots/nope", 404)


async def test_retention_and_retry_settings_are_documents(s: Site) -> None:
    assert s.seeded is not None
    project = f"/api/projects/{s.seeded.project_id}"
    saved = await s.api(
        "PUT",
        project,
        json={
            "name": "clinic",
            "history_retention_period": 30,
            "dataclip_retention_period": 7,
            "retention_policy": "erase_all",
        },
    )
    assert (
        saved["history_retention_period"],
        saved["dataclip_retention_period"],
        saved["retention_policy"],
    ) == (30, 7, "erase_all")
    bad = {"name": "clinic", "history_retention_period": 7, "dataclip_retention_period": 30}
    assert (await s.api("PUT", project, 422, json=bad))["error"]["code"] == "InputError"
    await s.api("PUT", project, 422, json={"name": "x", "retention_policy": "keep_some"})
    # erase_all: the worker is told not to send outputs
    made = (await s.http.post(f"/i/{s.seeded.webhook_id}", json={})).json()
    assert (await s.store.get_plan(made["run_id"]))["options"]["output_dataclips"] is False

    path = f"/api/workflows/{s.seeded.workflow_id}"
    current = await s.api("GET", path)
    assert current["retry"] == {
        "max_retries": 0,
        "backoff_ms": 10_000,
        "backoff_max_ms": 600_000,
        "on_fail": False,
    }
    retry = {"max_retries": 3, "backoff_ms": 500, "backoff_max_ms": 400, "on_fail": True}
    await s.api("PUT", path, 422, json={**editable(current), "retry": retry})
    retry["backoff_max_ms"] = 5000
    saved = await s.api("PUT", path, json={**editable(current), "retry": retry})
    assert saved["retry"] == retry


async def test_a_cron_cursor_starts_from_the_last_success(s: Site, clock: FakeClock) -> None:
    assert s.seeded is not None
    path = f"/api/workflows/{s.seeded.workflow_id}"
    current = await s.api("GET", path)
    document = editable(current)
    cron = next(t for t in document["triggers"] if t["type"] == "cron")
    cron["cron_cursor"] = "last_run"
    saved = await s.api("PUT", path, json=document)
    assert next(t for t in saved["triggers"] if t["type"] == "cron")["cron_cursor"] == "last_run"
    bad = editable(saved)
    next(t for t in bad["triggers"] if t["type"] == "cron")["cron_cursor"] = "job"
    await s.api("PUT", path, 422, json=bad)  # a job cursor names its job

    scheduler = Scheduler(s.served.coordinator)
    await scheduler.tick()  # starts the cursor
    clock.advance(seconds=30)
    [first] = await scheduler.tick()
    assert first.dataclip_id is None  # nothing to go on yet: {}

    # A successful run with a final state; the next tick starts from it.
    made = (await s.http.post(f"/i/{s.seeded.webhook_id}", json={"page": 1})).json()
    store = s.store
    await store.claim(1, ["*"])
    await store.claim(1, ["*"])
    await store.join_run(made["run_id"])
    await store.start_run(made["run_id"])
    job = s.seeded.job_ids[0]
    await store.start_step(made["run_id"], StepStart("s1", job))
    cursor = {"data": {"next_page": 2}}
    await store.complete_step(
        made["run_id"], StepCompletion("s1", ExitReason(Reason.SUCCESS), "out-1", cursor)
    )
    await store.complete_run(made["run_id"], RunCompletion(ExitReason(Reason.SUCCESS), "out-1"))
    clock.advance(seconds=60)
    [second] = await scheduler.tick()
    assert second.dataclip_id == "out-1"
    plan = await store.get_plan(second.run_id)
    assert plan["dataclip_id"] == "out-1"
    assert (await store.get_dataclip("out-1")).body == cursor
