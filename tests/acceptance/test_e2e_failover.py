"""End to end: a worker given two coordinator URLs keeps completing runs when the coordinator
it is connected to is killed for good (issue 14).

Two ``fulmen server`` processes share one PostgreSQL database; one ``fulmen worker`` is given
both URLs. A run is in flight on the worker (its job waits at a :class:`~fulmen_testing.e2e.Gate`)
when the coordinator the worker is on gets SIGKILL and is never started again. The worker
moves to the other one, rejoins the run there and reports it; the run is stored as a success,
and later runs, posted to the survivor, complete too. Skipped without a PostgreSQL server
(failed in CI), as every PostgreSQL test is.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from pathlib import Path

import httpx2
import pytest

from fulmen import keys as keyring
from fulmen_testing.coordinator import pg_database
from fulmen_testing.e2e import Api, Coordinator, Gate, WorkerProcess, gated_job

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@functools.cache
def keys() -> keyring.GeneratedKeys:
    return keyring.generate()


async def test_a_worker_keeps_completing_runs_when_its_coordinator_is_killed_for_good(
    tmp_path: Path,
) -> None:
    with pg_database() as database:
        shared = {"FULMEN_DATABASE_URL": database}
        one = Coordinator(tmp_path / "one", keys(), settings=shared)
        two = Coordinator(tmp_path / "two", keys(), settings=shared)
        async with asyncio.timeout(120), Gate() as gate:
            await one.start()  # one at a time: the first applies the schema
            await two.start()
            worker: WorkerProcess | None = None
            try:
                urls = {"WORKER_LIGHTNING_SERVICE_URL": f"{one.socket_url},{two.socket_url}"}
                worker = await WorkerProcess.start(one, settings={**urls, **gate.worker_settings})
                on = await worker.output.wait_for(r"connected to the coordinator at (ws://\S+)")
                first, second = (one, two) if on.group(1) == one.socket_url else (two, one)
                token = await first.api_token()  # stored in the shared database
                await exercise(first, second, gate, worker, token)
                assert await worker.terminate() == 0  # and it still drains and exits
            finally:
                if worker is not None and worker.process.returncode is None:
                    await worker.kill()
                await one.stop()
                await two.stop()


async def exercise(
    first: Coordinator, second: Coordinator, gate: Gate, worker: WorkerProcess, token: str
) -> None:
    """Run 1 in flight on ``first`` when it is killed; runs 2-4 after, on ``second``."""
    async with (
        httpx2.AsyncClient(base_url=first.base_url, timeout=30) as to_first,
        httpx2.AsyncClient(base_url=second.base_url, timeout=30) as to_second,
    ):
        before, after = Api(to_first, token), Api(to_second, token)
        _, hook = await before.workflow({"work": gated_job(gate, "run-{n}")}, [])
        in_flight = await before.hook(hook, {"n": 1})  # first pushes work-available to it
        await gate.reached("run-1")

        assert await first.kill() == -signal.SIGKILL  # never started again
        gate.release("run-1")
        await worker.output.wait_for(rf"connected to the coordinator at {second.socket_url}")
        run = await after.finished(in_flight)
        assert (run["state"], run["error_type"]) == ("success", None), run
        assert [(s["job_id"], s["state"]) for s in run["steps"]] == [("work", "success")]
        final = await after.dataclip(run["final_dataclip_id"])
        assert final["data"] == {"n": 1, "run-1": True}

        for n in (2, 3, 4):
            run_id = await after.hook(hook, {"n": n})
            await gate.reached(f"run-{n}")
            gate.release(f"run-{n}")
            run = await after.finished(run_id)
            assert (run["state"], run["error_type"]) == ("success", None), run
    assert f"lost the connection to {first.socket_url}" in worker.output.text()
