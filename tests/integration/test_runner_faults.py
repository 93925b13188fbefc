"""Faults stay contained (spec runner.md §3.9, P7): a raising handler leaves its worker alive,
a dead process restarts with growing backoff until the worker is failed, a stuck handler
times out. Restart delays run on a fake clock: the test sees each one and moves time on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.clock import FakeClock
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import ECHO, FAULTS

pytestmark = pytest.mark.timeout(60)

START = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


async def state(s: Served, ref: str) -> dict[str, Any]:
    detail: dict[str, Any] = (await s.http.get(f"/workers/{ref}")).json()
    return detail


async def serving(s: Served, ref: str) -> int:
    """The host pid of the process that answers ``ref``'s fetch now (inside its own pid
    namespace every worker process is pid 1, so the runner's view is the one that tells)."""
    assert (await s.http.get(f"/workers/{ref}/fetch/ok")).status_code == 200
    pid: int = (await state(s, ref))["pid"]
    return pid


def test_a_raising_handler_fails_only_its_invocation(tmp_path: Path) -> None:
    async def main() -> None:
        async with served(tmp_path) as s:
            f = await s.create(FAULTS, name="f")
            await s.create(ECHO, name="e")
            pid = await serving(s, "f")
            for path in ("raise", "memory"):
                reply = await s.http.get(f"/workers/f/fetch/{path}")
                assert reply.status_code == 500
                assert reply.json() == {"error": "worker handler raised", "code": "handler_raised"}
            assert await serving(s, "f") == pid
            await s.runner.logbook.wait_for(f["id"], lambda r: r.get("event") == "run_ended")
            runs = (await s.http.get("/workers/f/runs")).json()
            assert runs[0]["outcome"] == "handler_raised"
            assert runs[0]["error"] == "RuntimeError: tasks failed"
            assert (await state(s, "f"))["state"] == "ready"
            lines = "\n".join(r["line"] for r in (await s.http.get("/workers/f/logs")).json())
            assert "ValueError: boom" in lines and "MemoryError" in lines
            assert (await s.http.get("/workers/e/fetch/x")).status_code == 200
            # Escrin's behaviour, on request: the first raise stops the worker for good.
            t = await s.create(FAULTS, name="t", error_policy="terminate", run_on_create=False)
            assert (await s.http.get("/workers/t/fetch/raise")).status_code == 500
            await s.runner.logbook.wait_for(t["id"], lambda r: "terminate" in r["line"])
            assert (await state(s, "t"))["state"] == "stopped"

    asyncio.run(main())


def test_a_dead_process_restarts_with_backoff_until_the_worker_fails(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock(START)
        # The fetch timeout must outlast the OOM case's zeroing of 512 MB on a loaded machine
        # (at 1.5 s it answered 504 there, not 502); the hanging cases wait it out.
        options = {"crash_limit": 3, "fetch_timeout": 5.0, "cancel_grace": 1.0}
        async with served(tmp_path, clock=clock, **options) as s:
            f = await s.create(FAULTS, name="f", run_on_create=False)
            first = await serving(s, "f")
            # An async handler past its time is cancelled: 504, and the process lives on.
            assert (await s.http.get("/workers/f/fetch/slow")).status_code == 504
            assert await serving(s, "f") == first
            await s.runner.logbook.wait_for(f["id"], lambda r: "cancelled" in r["line"])
            assert (await s.http.get("/workers/f/fetch/exit")).status_code == 502
            second = await _restarted_after(s, clock, f["id"], 1.0)
            # Sync code cannot be cancelled: 504, the process is killed, and restarts later.
            assert (await s.http.get("/workers/f/fetch/hang")).status_code == 504
            third = await _restarted_after(s, clock, f["id"], 2.0)
            assert len({first, second, third}) == 3
            # Memory past the limit ends the whole process (its cgroup's OOM kill): a crash.
            assert (await s.http.get("/workers/f/fetch/oom")).status_code == 502
            await s.runner.logbook.wait_for(f["id"], lambda r: r["line"].endswith("failed"))
            assert (await state(s, "f"))["state"] == "failed"
            assert (await s.http.get("/workers/f/fetch/ok")).status_code == 503
            assert (await s.http.post("/workers/f/restart")).status_code == 202
            assert (await s.http.get("/workers/f/fetch/ok")).status_code == 200

    asyncio.run(main())


async def _restarted_after(s: Served, clock: FakeClock, worker_id: str, delay: float) -> int:
    """Wait for the supervisor to sleep ``delay``, check it is down meanwhile, move time on."""
    await clock.sleeper(delay)
    assert (await state(s, worker_id))["state"] == "crashed"
    assert (await s.http.get(f"/workers/{worker_id}/fetch/ok")).status_code == 503
    seen = len(s.runner.logbook.read(worker_id, limit=1000))
    clock.advance(delay)
    await s.runner.logbook.wait_for(
        worker_id, lambda r: "ready" in r["line"] and r["ts"] >= clock.now().timestamp()
    )
    assert len(s.runner.logbook.read(worker_id, limit=1000)) > seen
    return await serving(s, worker_id)
