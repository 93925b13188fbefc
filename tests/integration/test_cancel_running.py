"""Cancelling a run a worker has (issue 8), on SQLite and PostgreSQL: the coordinator tells
the worker with a ``run:cancel`` push on the run channel; a real Fulmen worker stops the
child while its job sleeps and completes the run with reason ``cancel``; a worker that does
not know the push (an OpenFn ws-worker, played here by a raw Phoenix client, which binds no
handler for it) carries on and the run ends as it would have."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fulmen.coordinator.reaper import Reaper
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import RunDetail, SQLStore
from fulmen_testing.coordinator import RawWorker, Seeded, seed
from fulmen_testing.operator import BACKENDS, Site, fulmen_worker, site, store_at, until

pytestmark = pytest.mark.anyio

#: Sleeps as long as its input says (state.data is the webhook body).
SLEEPER = "fn(lambda s: (__import__('time').sleep(s['data'].get('sleep', 0)), s)[1])"


def now_us() -> str:
    """A wire timestamp of now: microseconds since the epoch (spec §8.3)."""
    return str(time.time_ns() // 1000)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    site: Site
    seeded: Seeded

    async def webhook(self, body: dict[str, object]) -> str:
        answer = await self.site.http.post(f"/i/{self.seeded.webhook_id}", json=body)
        assert answer.status_code == 200, answer.text
        run_id: str = answer.json()["run_id"]
        return run_id

    async def ended(self, run_id: str, timeout: float = 20.0) -> RunDetail:
        return await until(
            lambda: self.store.get_run(run_id),
            lambda detail: detail.run.state in FINAL_RUN_STATES,
            timeout=timeout,
            what=f"run {run_id} ended",
        )


@pytest.fixture(params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with store_at(request.param, tmp_path) as (store, _):
        seeded = await seed(store, jobs=(("sleep", SLEEPER), ("after", "fn(lambda s: s)")))
        async with site(store) as s:
            yield World(store, s, seeded)


async def test_a_cancel_arriving_while_the_job_sleeps_stops_the_run(world: World) -> None:
    async with fulmen_worker(world.site.served):
        run_id = await world.webhook({"sleep": 60})
        await until(
            lambda: world.store.get_run(run_id),
            lambda detail: detail.run.state == "started" and len(detail.steps) == 1,
            what="the sleeping step started",
        )
        asked = time.monotonic()
        answer = await world.site.api("POST", f"/api/runs/{run_id}/cancel", 202)
        assert answer["state"] == "started" and answer["cancel_requested_at"] is not None
        detail = await world.ended(run_id)
        assert time.monotonic() - asked < 10  # stopped, not slept out
        assert (detail.run.state, detail.run.error_type) == ("cancelled", "CancelError")
        assert [(step.job_id, step.state) for step in detail.steps] == [
            (world.seeded.job_ids[0], "cancel")
        ]
        logs = [line.message for line in (await world.store.get_logs(run_id)).items]
        assert "Run complete with status: cancel" in logs
        # Not retried, and the worker's one slot is free again.
        assert (await world.site.api("GET", f"/api/work_orders/{detail.run.work_order_id}"))[
            "state"
        ] == "cancelled"
        after = await world.webhook({"sleep": 0})
        assert (await world.ended(after)).run.state == "success"
        await world.site.api("POST", f"/api/runs/{run_id}/cancel", 409)  # it has ended


async def test_a_cancel_asked_before_the_worker_joined_is_heard_on_join(world: World) -> None:
    async with RawWorker.connect(world.site.served.socket_url) as worker:
        run_id = await world.webhook({})
        assert (await worker.join("worker:queue", {}))[0] == "ok"
        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"]}
        )
        assert status == "ok" and reply["runs"][0]["id"] == run_id
        await world.site.api("POST", f"/api/runs/{run_id}/cancel", 202)  # claimed, not joined
        topic = f"run:{run_id}"
        assert await worker.join(topic, {"token": reply["runs"][0]["token"]}) == ("ok", {})
        assert await worker.push() == (topic, "run:cancel", {})
        # ...and a worker that stops before starting completes it straight from claimed.
        status, _ = await worker.call(
            topic,
            "run:complete",
            {"reason": "cancel", "error_type": "CancelError", "timestamp": now_us()},
        )
        assert status == "ok"
    assert (await world.store.get_run(run_id)).run.state == "cancelled"


async def test_a_worker_that_ignores_the_push_finishes_the_run(world: World) -> None:
    """What an OpenFn ws-worker does: its run channel binds no handler for run:cancel, and
    Phoenix's client drops events without one; nothing breaks, the run ends normally, and
    the reaper's reminders do no harm."""
    async with RawWorker.connect(world.site.served.socket_url) as worker:
        run_id = await world.webhook({})
        assert (await worker.join("worker:queue", {}))[0] == "ok"
        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"]}
        )
        topic = f"run:{run_id}"
        assert await worker.join(topic, {"token": reply["runs"][0]["token"]}) == ("ok", {})
        assert (await worker.call(topic, "run:start", {"timestamp": now_us()}))[0] == "ok"
        await world.site.api("POST", f"/api/runs/{run_id}/cancel", 202)
        assert await worker.push() == (topic, "run:cancel", {})
        sweep = await Reaper(world.site.served.coordinator).sweep()
        assert sweep.cancels == [run_id]  # told again: still in flight
        assert await worker.push() == (topic, "run:cancel", {})
        status, _ = await worker.call(
            topic, "run:complete", {"reason": "success", "timestamp": now_us()}
        )
        assert status == "ok"
    run = (await world.store.get_run(run_id)).run
    assert run.state == "success" and run.cancel_requested_at is not None
    assert (await Reaper(world.site.served.coordinator).sweep()).cancels == []
