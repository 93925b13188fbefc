"""The worker as a service: its health and metrics endpoint, and shutdown. SIGTERM is tested on
``fulmen worker`` as a real subprocess: it stops claiming, lets the active run finish, leaves
``worker:queue`` and exits 0 (§10.4, spec scenario 22). A drain that runs out of time ends the
run with a reason instead; a second SIGINT stops at once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from fulmen_testing.worker import (
    Lightning,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = plan(job("quick", "fn(lambda s: {**s, 'data': {'done': True}})\n"))


def sleeper(seconds: float) -> dict[str, object]:
    body = f"import time\n@fn\ndef nap(state):\n    time.sleep({seconds})\n    return state\n"
    return plan(job("nap", body))


def server() -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key())


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_health_and_metrics_over_http() -> None:
    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning, capacity=2)) as worker:
            lightning.enqueue(ScriptedRun("r", QUICK))
            await lightning.completed("r")
            await lightning.wait_for(lambda: worker.active == 0 and bool(lightning.named("claim")))
            port = worker.health.port
            assert await http_get(port, "/livez") == (200, "")
            assert (await http_get(port, "/readyz"))[0] == 200
            status, text = await http_get(port, "/metrics")
            assert status == 200
            lines = text.splitlines()
            assert "fulmen_worker_runs_claimed_total 1.0" in lines
            assert 'fulmen_worker_runs_completed_total{reason="success"} 1.0' in lines
            assert "fulmen_worker_runs_active 0.0" in lines
            assert "fulmen_worker_capacity 2.0" in lines
            assert "fulmen_worker_connected 1.0" in lines
            assert any(line.startswith("fulmen_worker_sandbox_info{level=") for line in lines)

    scenario(body)


def test_a_drain_that_runs_out_of_time_ends_the_run_with_a_reason() -> None:
    async def body() -> None:
        async with server() as lightning:
            settings = settings_for(lightning, drain_timeout=0.3)
            async with running(settings):
                lightning.enqueue(ScriptedRun("long", sleeper(30)))
                await lightning.wait_for(lambda: bool(lightning.named("step:start", "run:long")))
            # leaving the block stopped the worker: it waited 0.3 s, then ended the run
            complete = lightning.complete_of("long")
            assert complete == {
                "reason": "kill",
                "error_type": "ShutdownError",
                "error_message": "The worker shut down before the run finished (drain limit 0.3s)",
            }
            [step] = [e.payload for e in lightning.of_run("long") if e.event == "step:complete"]
            assert (step["reason"], step["error_type"]) == ("kill", "ShutdownError")
            names = [(e.topic, e.event) for e in lightning.events]
            assert names.index(("worker:queue", "phx_leave")) > names.index(
                ("run:long", "run:complete")
            )

    scenario(body)


async def start_worker(
    lightning: Lightning,
    capacity: int = 1,
    *,
    health_host: str | None = "127.0.0.1",
    environ: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKER_")},
        "WORKER_SECRET": keys().worker_secret,
        "WORKER_LIGHTNING_PUBLIC_KEY": keys().public_key,
        "WORKER_LIGHTNING_SERVICE_URL": lightning.url,
        **(environ or {}),
    }
    host = [f"--health-host={health_host}"] if health_host is not None else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fulmen",
        "worker",
        f"--capacity={capacity}",
        "--port=0",
        *host,
        "--backoff=0.05/0.2",
        "--log=info",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_until(process: asyncio.subprocess.Process, text: str) -> str:
    """Read the worker's log until a line holds ``text``; that line."""
    assert process.stderr is not None
    seen: list[str] = []
    while text not in (line := (await process.stderr.readline()).decode()):
        assert line, f"the worker ended without logging {text!r}: {''.join(seen)}"
        seen.append(line)
    return line


async def reachable(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def test_health_listens_on_loopback_unless_told_otherwise() -> None:
    """Started as an operator would, without --health-host: 127.0.0.1 answers, another
    address of this host (127.0.0.2, also loopback, so the test needs no network) does not.
    WORKER_HEALTH_HOST=0.0.0.0 opens it to every interface."""

    async def health_port(process: asyncio.subprocess.Process) -> tuple[str, int]:
        line = await read_until(process, "health on http://")
        host, _, port = line.rsplit("http://", 1)[1].strip().rpartition(":")
        return host, int(port)

    async def body() -> None:
        async with server() as lightning:
            process = await start_worker(lightning, health_host=None)
            try:
                host, port = await health_port(process)
                assert host == "127.0.0.1"
                assert await http_get(port, "/livez") == (200, "")
                assert not await reachable("127.0.0.2", port)
            finally:
                process.terminate()
                await process.wait()
            process = await start_worker(
                lightning, health_host=None, environ={"WORKER_HEALTH_HOST": "0.0.0.0"}
            )
            try:
                host, port = await health_port(process)
                assert host == "0.0.0.0"
                assert await reachable("127.0.0.2", port)
            finally:
                process.terminate()
                await process.wait()

    scenario(body, timeout=60)


def test_sigterm_stops_claiming_and_lets_the_active_run_finish() -> None:
    async def body() -> None:
        async with server() as lightning:
            process = await start_worker(lightning, capacity=2)
            lightning.enqueue(ScriptedRun("busy", sleeper(1.0)))
            await lightning.wait_for(lambda: bool(lightning.named("step:start", "run:busy")))
            process.send_signal(signal.SIGTERM)
            await read_until(process, "stopping: waiting up to 300s for 1 active runs")
            lightning.enqueue(ScriptedRun("late", QUICK))  # a free slot, work-available: no claim
            assert await process.wait() == 0
            complete = lightning.complete_of("busy")
            assert complete is not None and complete["reason"] == "success"
            assert "late" not in lightning.handed_out
            names = [(e.topic, e.event) for e in lightning.events]
            assert names[-1] == ("worker:queue", "phx_leave")
            assert names.index(("run:busy", "run:complete")) < len(names) - 1

    scenario(body, timeout=40)


def test_a_second_sigint_stops_at_once() -> None:
    async def body() -> None:
        async with server() as lightning:
            process = await start_worker(lightning)
            lightning.enqueue(ScriptedRun("busy", sleeper(30)))
            await lightning.wait_for(lambda: bool(lightning.named("step:start", "run:busy")))
            process.send_signal(signal.SIGINT)
            # a signal sent while the same one is pending is merged into it: wait for the
            # first to be handled before sending the second
            await read_until(process, "stopping: finishing active runs")
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130

    scenario(body, timeout=40)
