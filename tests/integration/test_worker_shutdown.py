"""A worker stopped just after a run's ``run:complete`` exits promptly (issue 14).

Against a minimal Lightning-protocol server that never answers ``phx_leave`` and holds a claim
open while it has no run, a worker signalled a few milliseconds after ``run:complete`` used to
wait 5 s for the leave's answer and then the message timeout for the claim's, and was still
running 15 s after SIGTERM. Now no wait is for an answer it can do without, every wait is
bounded and logged, and the drain ends within the claim grace and the close grace.

The server's ``on_complete`` hook stops the worker while the ``run:complete`` is still
unanswered, so each test hits the window where it hung, every time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from fulmen.config import Secret, WorkerSettings
from fulmen.runtime.entry import PRELOAD
from fulmen.sandbox import Zygote
from fulmen.worker import Worker, prepare
from fulmen.worker.main import CLAIM_GRACE, CLOSE_GRACE
from fulmen_testing.worker import job, keys, private_key, scenario
from fulmen_testing.worker.minimal import MinimalLightning

ROOT = Path(__file__).resolve().parents[2]
QUICK: dict[str, Any] = {
    "starting_node_id": "quick",
    "triggers": [],
    "jobs": [job("quick", "fn(lambda s: {**s, 'data': {'done': True}})\n")],
    "edges": [],
}
#: What a drain may take here: the claim grace, the close grace and room for a loaded machine.
#: The old drain took at least the message timeout (30 s) for the unanswered claim.
STOPPED_WITHIN = CLAIM_GRACE + CLOSE_GRACE + 6


def settings_for(server: MinimalLightning) -> WorkerSettings:
    return WorkerSettings(
        lightning_url=server.url,
        secret=Secret("WORKER_SECRET", keys().worker_secret),
        public_key=Secret("WORKER_LIGHTNING_PUBLIC_KEY", keys().public_key),
        capacity=2,  # a free slot while the run runs: a claim is always held open
        backoff_min=0.05,
        backoff_max=0.2,
        port=0,
        health_host="127.0.0.1",
        message_timeout=30.0,
    )


def test_stopped_right_after_run_complete_the_worker_stops_promptly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fulmen.worker")

    async def body() -> MinimalLightning:
        async with (
            MinimalLightning(private_key()) as server,
            await Zygote.start(preload=PRELOAD) as zygote,
        ):
            settings = settings_for(server)
            worker = Worker(settings, prepare(settings), zygote=zygote, health=False)
            server.on_complete = lambda run_id: worker.stop()
            task = asyncio.create_task(worker.run())
            await worker.queue.wait_ready()
            await server.enqueue("r1", QUICK)
            async with asyncio.timeout(STOPPED_WITHIN):
                await task
            return server

    server = scenario(body)
    assert server.completed["r1"]["reason"] == "success"
    assert ("run:r1", "phx_leave") in server.received  # sent, never answered
    assert server.received[-1] == ("worker:queue", "phx_leave")
    waits = [r.getMessage() for r in caplog.records if "stopping: waiting" in r.getMessage()]
    assert waits == [  # its run:complete was not answered yet: the run is still active
        f"stopping: waiting up to {CLAIM_GRACE:g}s for the answer to 1 claims in flight",
        "stopping: waiting up to 300s for 1 active runs",
        f"stopping: waiting up to {CLOSE_GRACE:g}s for {server.url} to close the connection",
    ]


def test_a_claim_answered_during_the_drain_still_runs_its_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """§10.4: a claim in flight at the signal completes, and its runs run."""
    caplog.set_level(logging.INFO, logger="fulmen.worker")

    async def body() -> MinimalLightning:
        async with (
            MinimalLightning(private_key()) as server,
            await Zygote.start(preload=PRELOAD) as zygote,
        ):
            settings = settings_for(server)
            worker = Worker(settings, prepare(settings), zygote=zygote, health=False)
            late: list[asyncio.Task[None]] = []

            def stop_then_answer_the_claim(run_id: str) -> None:
                if run_id == "r1":
                    worker.stop()
                    late.append(asyncio.create_task(server.enqueue("r2", QUICK)))

            server.on_complete = stop_then_answer_the_claim
            task = asyncio.create_task(worker.run())
            await worker.queue.wait_ready()
            await server.enqueue("r1", QUICK)
            async with asyncio.timeout(STOPPED_WITHIN):
                await task
            return server

    server = scenario(body)
    assert server.completed["r2"]["reason"] == "success"
    assert server.received[-1] == ("worker:queue", "phx_leave")
    assert "run r2 ended: success" in caplog.text


async def start_worker(server: MinimalLightning) -> asyncio.subprocess.Process:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKER_")},
        "WORKER_SECRET": keys().worker_secret,
        "WORKER_LIGHTNING_PUBLIC_KEY": keys().public_key,
        "WORKER_LIGHTNING_SERVICE_URL": server.url,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fulmen",
        "worker",
        "--capacity=2",
        "--port=0",
        "--backoff=0.05/0.2",
        "--log=info",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_right_after_run_complete_exits_0_promptly(attempt: int) -> None:
    """``fulmen worker`` as a process, SIGTERM sent as its ``run:complete`` arrives."""

    async def body() -> tuple[int, str]:
        process: asyncio.subprocess.Process | None = None
        signalled = asyncio.Event()

        def signal_the_worker(run_id: str) -> None:
            assert process is not None
            process.send_signal(signal.SIGTERM)
            signalled.set()

        async with MinimalLightning(private_key(), on_complete=signal_the_worker) as server:
            process = await start_worker(server)
            assert process.stderr is not None
            log = asyncio.create_task(process.stderr.read())
            try:
                await server.enqueue(f"run-{attempt}", QUICK)
                await signalled.wait()
                async with asyncio.timeout(STOPPED_WITHIN):
                    status = await process.wait()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert server.completed[f"run-{attempt}"]["reason"] == "success"
            return status, (await log).decode()

    status, log = scenario(body, timeout=60)
    assert status == 0, log
    assert "stopping: waiting up to" in log
    assert log.rstrip().splitlines()[-1].endswith("stopped"), log
