"""The worker's own CPU per run, in one process: the real ``Worker`` (connection, Phoenix
session, claim loop, runs, outbox) against a scripted socket that answers as a Fulmen
coordinator does, with the frames ``bench/e2e.py`` exchanges (the claim brings the plan and
input, the run's reports go inside its join, whose answer closes the channel). No TCP and
no coordinator process: the figure is the worker's Python and its sandbox side, without
the noise of a second service. Figures only.

For capacity 1 and 5, N trivial runs are queued and pushed (``work-available``) each round;
the CPU this process spent from the push to the last run's end is divided by N, less what
the scripted coordinator itself spent (``server``; its run tokens are minted before the
round). ``user``/``sys`` split it as the kernel sampled it (250 Hz ticks: rough).

* default: each run forks a real child through the zygote (``execution.start_zygote``), as
  ``fulmen worker`` does;
* ``--fake-zygote``: the sandbox answers at once with a trivial run's events, from this
  process: what is left is the worker's own path (token, plan, reports, outbox, session,
  claims), with the sandbox side and the waits for the child taken out;
* ``--gap-ms G`` (with ``--fake-zygote``): the fake child pauses G ms after its start, so that
  the worker goes idle once per run as it does while a real child runs.

What it showed (December 2026, 2 vCPUs in a VM, loaded): a trivial run costs the worker
about 1.1-1.3 ms here with real children, 0.28-0.35 ms with the fake zygote, and 0.6-0.7 ms
with the fake zygote and one 1-5 ms pause per run: most of the worker's CPU per run is its
sandbox side and waking up (an epoll wake after 1 ms idle costs some 20 us on this host,
and the Python that runs after it finds its caches cold), not its protocol code.

    .venv/bin/python bench/worker_cpu.py [--runs 300] [--capacities 1,5] [--rounds 2]
        [--fake-zygote [--gap-ms 0]]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import uvloop

from fulmen.config import Secret, WorkerSettings
from fulmen.execution import start_zygote
from fulmen.runtime.events import timestamp_us
from fulmen.sandbox.outcome import ChildExit
from fulmen.tokens import mint_run_token
from fulmen.worker import Worker, prepare
from fulmen.worker import websocket as ws_module
from fulmen_testing.coordinator import ACCEPTS
from fulmen_testing.worker import keys, private_key

BODY = "fn(lambda s: {**s, 'data': {'n': 1}})\n"
HEADERS = {
    "host": "127.0.0.1:33641",
    "accept": "*/*",
    "content-length": "7",
    "content-type": "application/json",
}


def claimed_run() -> dict[str, Any]:
    """One run as a Fulmen coordinator's claim reply carries it (a webhook-started run)."""
    run_id = str(uuid.uuid4())
    token = mint_run_token(private_key(), run_id, now=time.time(), run_timeout=300)
    plan = {
        "id": run_id,
        "jobs": [{"id": "a", "name": "a", "body": BODY, "adaptor": "common", "language": "python"}],
        "triggers": [{"id": "hook"}],
        "edges": [
            {
                "id": str(uuid.uuid4()),
                "source_trigger_id": "hook",
                "target_job_id": "a",
                "condition": "always",
                "enabled": True,
            }
        ],
        "options": {"run_timeout_ms": 300000, "output_dataclips": True, "job_log_level": "info"},
        "starting_node_id": "hook",
        "dataclip_id": str(uuid.uuid4()),
        "project_id": str(uuid.uuid4()),
    }
    request = {"method": "POST", "path": "/i/hook", "query_params": {}, "headers": HEADERS}
    return {
        "id": run_id,
        "token": token,
        "plan": plan,
        "dataclip": {"data": {"i": 0}, "request": request},
    }


class Coordinator:
    """Answers the worker's frames as the Fulmen coordinator does; counts finished runs."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.finished = 0
        self.cpu_s = 0.0
        self.changed = asyncio.Event()
        self.socket: FakeSocket | None = None

    def answer(self, frame: str) -> list[str]:
        join_ref, ref, topic, event, payload = orjson.loads(frame)
        out: list[str] = []

        def reply(response: Any) -> None:
            message = [join_ref, ref, topic, "phx_reply", {"response": response, "status": "ok"}]
            out.append(orjson.dumps(message).decode())

        def answers(reports: list[dict[str, Any]]) -> dict[str, Any]:
            if any(report["event"] == "run:complete" for report in reports):
                self.finished += 1
                self.changed.set()
            return {"replies": [{"status": "ok", "response": {}} for _ in reports]}

        if topic == "worker:queue" and event == "phx_join":
            reply({"accepts": ACCEPTS})
        elif event == "claim":
            demand = payload["demand"]
            runs, self.queue = self.queue[:demand], self.queue[demand:]
            reply({"runs": runs})
        elif topic.startswith("run:") and event == "phx_join":
            reports = payload.get("reports") or []
            reply({"reports": {"status": "ok", "response": answers(reports)}, "left": True})
        elif event == "run:reports":
            reply(answers(payload["reports"]))
        elif event == "phx_leave":
            reply({})
            out.append(orjson.dumps([join_ref, ref, topic, "phx_close", {}]).decode())
        else:
            reply(None)
        return out


class FakeSocket:
    """Stands for ``websocket.WebSocket``: what the worker sends is answered in the next pass
    of the event loop."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._loop = asyncio.get_running_loop()
        self._handler: Callable[[str | bytes], None] | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        coordinator.socket = self

    def attach(self, handler: Callable[[str | bytes], None]) -> None:
        self._handler = handler

    def deliver(self, text: str) -> None:
        assert self._handler is not None
        self._loop.call_soon(self._handler, text)

    def send_texts(self, frames: list[str]) -> None:
        began = time.thread_time()
        answers = [text for frame in frames for text in self._coordinator.answer(frame)]
        self._coordinator.cpu_s += time.thread_time() - began
        for text in answers:
            self.deliver(text)

    async def close(self, timeout: float = 0.0) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class FakeHandle:
    """A trivial run's events, as the runtime in a child emits them."""

    def __init__(self, payload: dict[str, Any], gap_s: float) -> None:
        self._payload = payload
        self._gap_s = gap_s

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._events()

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        job = self._payload["plan"]["jobs"][0]["id"]
        step = str(uuid.uuid4())
        now = str(timestamp_us())
        output = orjson.dumps({**self._payload["input"], "data": {"n": 1}}).decode()
        await asyncio.sleep(0)
        yield {"type": "workflow-start", "timestamp": now}
        await asyncio.sleep(self._gap_s)
        yield {"type": "step-start", "step_id": step, "job_id": job, "timestamp": now}
        for text in (f"Starting step {job}", f"Step {job} finished in 0ms: success"):
            line = {"level": "info", "source": "R/T", "message": [text], "timestamp": now}
            yield {"type": "log", **line, "step_id": step}
        yield {
            "type": "step-complete",
            "step_id": step,
            "job_id": job,
            "reason": "success",
            "error_type": None,
            "error_message": None,
            "output": output,
            "next": [],
            "duration_ms": 0,
            "mem_bytes": 27770880,
            "timestamp": now,
        }
        yield {
            "type": "workflow-complete",
            "reason": "success",
            "error_type": None,
            "error_message": None,
            "final_state": output,
            "leaves": [step],
            "timestamp": now,
        }

    async def wait(self) -> ChildExit:
        return ChildExit("ok", "", 0, None, 0.001, None)

    def kill(self) -> None:
        pass


class FakeIsolation:
    level = "fake"

    def summary(self) -> str:
        return "no sandbox: bench/worker_cpu.py --fake-zygote"


class FakeZygote:
    """Stands for ``sandbox.Zygote``: a run's "child" is a :class:`FakeHandle`."""

    isolation = FakeIsolation()

    def __init__(self, gap_s: float) -> None:
        self._gap_s = gap_s

    async def run(self, entry: str, payload: dict[str, Any], *args: Any, **kw: Any) -> FakeHandle:
        return FakeHandle(payload, self._gap_s)

    async def __aenter__(self) -> FakeZygote:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def case(zygote: Any, capacity: int, runs: int, rounds: int) -> None:
    coordinator = Coordinator()

    async def connect(url: str, **kw: Any) -> FakeSocket:
        return FakeSocket(coordinator)

    ws_module.connect = connect  # type: ignore[assignment]  # Connection calls it
    settings = WorkerSettings(
        lightning_url="ws://127.0.0.1:9/worker",
        secret=Secret("WORKER_SECRET", keys().worker_secret),
        public_key=Secret("WORKER_LIGHTNING_PUBLIC_KEY", keys().public_key),
        capacity=capacity,
        port=0,
        health_host="127.0.0.1",
    )
    worker = Worker(settings, prepare(settings), zygote=zygote, health=False)
    task = asyncio.create_task(worker.run())
    await worker.queue.wait_ready()
    for round_ in range(rounds + 1):  # the first round warms up
        coordinator.queue = [claimed_run() for _ in range(runs)]
        coordinator.finished = 0
        (user, system), served = cpu(), coordinator.cpu_s
        assert coordinator.socket is not None
        coordinator.socket.deliver(
            orjson.dumps(["1", None, "worker:queue", "work-available", {}]).decode()
        )
        while coordinator.finished < runs:
            coordinator.changed.clear()
            await coordinator.changed.wait()
        while worker.active:
            await asyncio.sleep(0.001)
        (user_after, system_after), served = cpu(), coordinator.cpu_s - served
        if round_:
            worker_ms = ((user_after - user) + (system_after - system) - served) * 1e3 / runs
            print(
                f"capacity {capacity}: worker {worker_ms:.3f} ms per run "
                f"(user {(user_after - user) * 1e3 / runs:.3f}, "
                f"sys {(system_after - system) * 1e3 / runs:.3f}, "
                f"server {served * 1e3 / runs:.3f})",
                flush=True,
            )
    worker.stop()
    await task


async def main(args: argparse.Namespace) -> None:
    capacities = [int(c) for c in args.capacities.split(",")]
    print(f"{args.runs} trivial runs per round, {args.rounds} rounds per capacity")
    if args.fake_zygote:
        zygote: Any = FakeZygote(args.gap_ms / 1000)
    else:
        zygote = await start_zygote()
    async with zygote:
        for capacity in capacities:
            await case(zygote, capacity, args.runs, args.rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--capacities", default="1,5")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fake-zygote", action="store_true")
    parser.add_argument("--gap-ms", type=float, default=0.0)
    uvloop.run(main(parser.parse_args()))
