"""The coordinator's side of a refused run (issue 14), through a real socket on loopback and
the reaper with an injected clock: ``run:refuse`` is offered in the ``worker:queue`` join
answer; a refusal backed by the run's token puts the run back at once with a note in its
log; one without a valid token changes nothing; a claim never joined leaves a note too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fulmen import keys as keyring
from fulmen.coordinator import build_coordinator
from fulmen.coordinator.reaper import Reaper
from fulmen.lifecycle import RunState
from fulmen.plan import Options
from fulmen.store import EnqueueRequest, SQLStore
from fulmen.tokens import mint_run_token
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import (
    RawWorker,
    Seeded,
    Served,
    seed,
    serve,
    settings,
    sqlite_store,
)

pytestmark = pytest.mark.anyio

REASON = {"code": "bad_signature", "message": "the token's signature does not verify"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    served: Served
    seeded: Seeded

    async def claimed(self, worker: RawWorker) -> tuple[str, str]:
        """Enqueue a run and claim it: (run id, run token)."""
        enqueued = await self.store.enqueue(
            EnqueueRequest(self.seeded.workflow_id, options=Options(run_timeout_ms=60_000))
        )
        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": "pod-7"}
        )
        assert status == "ok" and [r["id"] for r in reply["runs"]] == [enqueued.run_id]
        return enqueued.run_id, reply["runs"][0]["token"]

    async def notes(self, run_id: str) -> list[str]:
        page = await self.store.get_logs(run_id)
        return [line.message for line in page.items if line.source == "FULMEN"]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        async with serve(store) as served:
            yield World(store, served, seeded)


async def test_a_refused_run_is_back_in_the_queue_at_once_and_says_why(world: World) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        status, joined = await worker.join("worker:queue", {})
        assert status == "ok" and "run:refuse" in joined["accepts"]
        run_id, token = await world.claimed(worker)

        answer = await worker.call(
            "worker:queue", "run:refuse", {"id": run_id, "token": token, **REASON}
        )
        assert answer == ("ok", {"returned": True})
        run = (await world.store.get_run(run_id)).run
        assert (run.state, run.worker_name) == (RunState.AVAILABLE, None)
        [note] = await world.notes(run_id)
        assert note.startswith("Worker test-worker refused this run: its run token did not ")
        assert "(bad_signature)" in note and "WORKER_LIGHTNING_PUBLIC_KEY" in note
        assert "signature does not verify" not in note  # the worker's words stay out of it

        # Sent again: that claim is over, nothing changes; the run can be claimed again.
        answer = await worker.call(
            "worker:queue", "run:refuse", {"id": run_id, "token": token, **REASON}
        )
        assert answer == ("ok", {"returned": False})
        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
        )
        assert status == "ok" and [r["id"] for r in reply["runs"]] == [run_id]
        assert len(await world.notes(run_id)) == 1
    metrics = world.served.coordinator.metrics.render().decode()
    assert 'fulmen_refused_runs_total{code="bad_signature"} 1.0' in metrics


async def test_a_refusal_needs_the_runs_own_token(world: World) -> None:
    other = keyring.load_private_key(keyring.generate().private_key)
    async with RawWorker.connect(world.served.socket_url) as worker:
        await worker.join("worker:queue", {})
        run_id, token = await world.claimed(worker)
        forged = mint_run_token(other, run_id, now=datetime.now(UTC).timestamp(), run_timeout=60)
        for payload in (
            {"id": run_id, "token": forged, **REASON},
            {"id": "another-run", "token": token, **REASON},
            {"id": run_id, "token": token},  # no reason given
        ):
            answer = await worker.call("worker:queue", "run:refuse", payload)
            assert answer == ("error", {"reason": "unauthorized"})
    run = (await world.store.get_run(run_id)).run
    assert (run.state, run.worker_name) == (RunState.CLAIMED, "pod-7")
    assert await world.notes(run_id) == []


async def test_a_claim_never_joined_goes_back_with_a_note(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    async with sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store:
        seeded = await seed(store)
        run_id = (await store.enqueue(EnqueueRequest(seeded.workflow_id))).run_id
        await store.claim(1, ["*"], "ws-worker-1")
        coordinator = build_coordinator(settings(run_join_timeout=30.0), store, clock=clock)
        clock.advance(seconds=31)
        assert (await Reaper(coordinator).sweep()).rolled_back == [run_id]
        page = await store.get_logs(run_id)
    [line] = page.items
    assert (line.source, line.level) == ("FULMEN", "warn")
    assert line.message.startswith(
        "Worker ws-worker-1 claimed this run but did not join it within 30s, so it is back in "
        "the queue."
    )
    assert "ws-worker" in line.message and "WORKER_LIGHTNING_PUBLIC_KEY" in line.message
