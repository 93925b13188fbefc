"""Automatic retries (issue 8) through the coordinator, on SQLite and PostgreSQL, with an
injected clock: a workflow allowing two retries, set through the REST API; a run that
crashes, its retry killed, the next retry succeeding: three runs in one work order, each
visible as the retry of the one before, none claimed before its backoff; and a lost run
retried by the reaper's sweep."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fulmen.coordinator.reaper import Reaper
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import RawWorker, Seeded, seed
from fulmen_testing.operator import BACKENDS, Site, site, store_at

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def now_us() -> str:
    return str(time.time_ns() // 1000)


@dataclass
class World:
    site: Site
    seeded: Seeded
    clock: FakeClock


@pytest.fixture(params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock()
    async with store_at(request.param, tmp_path, clock=clock) as (store, _):
        seeded = await seed(store)
        async with site(store, clock=clock) as s:
            yield World(s, seeded, clock)


async def allow_retries(w: World, **retry: Any) -> None:
    path = f"/api/workflows/{w.seeded.workflow_id}"
    current = await w.site.api("GET", path)
    document = {k: current[k] for k in ("name", "concurrency", "jobs", "triggers", "edges")}
    saved = await w.site.api(
        "PUT",
        path,
        json={**document, "retry": {**current["retry"], **retry}},
        params={"expected_version": current["version"]},
    )
    assert saved["retry"] == {**current["retry"], **retry}
    assert saved["version"] == current["version"] + 1


async def claim(worker: RawWorker) -> list[dict[str, Any]]:
    status, reply = await worker.call(
        "worker:queue", "claim", {"demand": 1, "languages": ["python"]}
    )
    assert status == "ok"
    runs: list[dict[str, Any]] = reply["runs"]
    return runs


async def run_to_end(worker: RawWorker, claimed: dict[str, Any], reason: str) -> None:
    topic = f"run:{claimed['id']}"
    assert await worker.join(topic, {"token": claimed["token"]}) == ("ok", {})
    assert (await worker.call(topic, "run:start", {"timestamp": now_us()}))[0] == "ok"
    payload = {"reason": reason, "error_type": None if reason == "success" else "Boom"}
    status, response = await worker.call(topic, "run:complete", {**payload, "timestamp": now_us()})
    assert status == "ok", response


async def test_a_retry_chain_ending_in_success(world: World) -> None:
    w = world
    await allow_retries(w, max_retries=2, backoff_ms=1000, backoff_max_ms=60_000)
    first = (await w.site.http.post(f"/i/{w.seeded.webhook_id}", json={"n": 1})).json()
    order = f"/api/work_orders/{first['work_order_id']}"
    async with RawWorker.connect(w.site.served.socket_url) as worker:
        assert (await worker.join("worker:queue", {}))[0] == "ok"
        expected = [first["run_id"]]
        for backoff, reason in ((1, "crash"), (2, "kill")):
            [claimed] = await claim(worker)
            assert claimed["id"] == expected[-1]
            await run_to_end(worker, claimed, reason)
            doc = await w.site.api("GET", order)
            retry, failed = doc["runs"][:2]
            assert doc["state"] == "available"  # the latest run's
            assert (retry["retry_of"], retry["attempt"]) == (failed["id"], failed["attempt"] + 1)
            assert retry["queue"] == "manual" and retry["dataclip_id"] == failed["dataclip_id"]
            assert await claim(worker) == []  # not before its backoff
            w.clock.advance(seconds=backoff)
            expected.append(retry["id"])
        [claimed] = await claim(worker)
        assert claimed["id"] == expected[-1]
        await run_to_end(worker, claimed, "success")
    doc = await w.site.api("GET", order)
    assert doc["state"] == "success"
    assert [(r["id"], r["attempt"], r["state"]) for r in doc["runs"]] == [
        (expected[2], 3, "success"),
        (expected[1], 2, "killed"),
        (expected[0], 1, "crashed"),
    ]
    assert [r["retry_of"] for r in doc["runs"]] == [expected[1], expected[0], None]


async def test_a_lost_run_is_retried_by_the_reaper_and_a_failure_is_not(world: World) -> None:
    w = world
    await allow_retries(w, max_retries=1, backoff_ms=500)
    made = (await w.site.http.post(f"/i/{w.seeded.webhook_id}", json={})).json()
    async with RawWorker.connect(w.site.served.socket_url) as worker:
        assert (await worker.join("worker:queue", {}))[0] == "ok"
        [claimed] = await claim(worker)
        topic = f"run:{claimed['id']}"
        assert await worker.join(topic, {"token": claimed["token"]}) == ("ok", {})
        w.clock.advance(seconds=400)  # past the run timeout (300 s) and grace
        [lost] = (await Reaper(w.site.served.coordinator).sweep()).lost
        assert lost.id == made["run_id"]
        w.clock.advance(seconds=1)
        [retry] = await claim(worker)
        doc = await w.site.api("GET", f"/api/runs/{retry['id']}")
        assert (doc["retry_of"], doc["attempt"]) == (made["run_id"], 2)
        await run_to_end(worker, retry, "fail")  # fail is retried only when asked
        assert await claim(worker) == []
    order = await w.site.api("GET", f"/api/work_orders/{made['work_order_id']}")
    assert [r["state"] for r in order["runs"]] == ["failed", "lost"]
