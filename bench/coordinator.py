"""The coordinator alone: ``fulmen server`` (SQLite in a temporary data directory) worked by an
ideal worker in this process, which runs nothing and answers instantly. It shows how many runs
a second the coordinator can take on its own, and what each of the worker's messages costs it.

The ideal worker speaks the wire protocol as ``fulmen worker`` does for a trivial one-step run:
claim, join ``run:<id>``, ``fetch:plan``, ``fetch:dataclip``, ``run:start``, ``step:start``,
the log lines, ``step:complete``, ``run:complete``, leave. Runs are enqueued with webhooks
before the clock starts, so the figures are the worker side of the socket only.

Printed per case: runs/s, the coordinator's CPU time per run (user + system, from
``/proc``; steadier than the rate on a shared machine) and per message, for ``LINES`` log lines
sent one ``run:log`` each (``log``) or as one ``run:batch_logs`` (``batch``), or everything
from ``run:start`` on in one ``run:reports`` frame after a join whose answer holds the plan
and input (``reports``), or that frame inside the run's join after a claim whose answer held
the plan and input, the join then closing the channel with its answer (``claim``: as
``fulmen worker`` reports a short run to a Fulmen coordinator), with 1 and 8 runs in flight.

Run: ``.venv/bin/python bench/coordinator.py [--runs N] [--cases claim:1] [--loop asyncio|uvloop]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import orjson
import websockets

from fulmen import keys as keyring
from fulmen.phoenix.frames import BinaryReply, Sender, decode_binary
from fulmen.tokens import mint_worker_token
from fulmen_testing.e2e import Api, Coordinator, cpu_seconds

#: Log lines of a trivial run, as ``fulmen worker`` sends them.
LINES = 7


class IdealWorker:
    """Phoenix v2 JSON frames over one socket; each request awaits its reply."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket
        self._refs = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.messages = 0

    async def _read(self) -> None:
        async for frame in self._socket:
            if isinstance(frame, bytes):  # fetch:dataclip's answer is a binary reply
                reply = decode_binary(frame, sender=Sender.SERVER)
                assert isinstance(reply, BinaryReply)
                self._waiting.pop(reply.ref).set_result({"status": reply.status, "response": {}})
                continue
            _join_ref, ref, _topic, event, payload = orjson.loads(frame)
            if event == "phx_reply" and ref in self._waiting:
                self._waiting.pop(ref).set_result(payload)

    async def call(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> Any:
        ref = str(next(self._refs))
        future = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        await self._socket.send(orjson.dumps([join_ref, ref, topic, event, payload]).decode())
        self.messages += 1
        reply = await future
        assert reply["status"] == "ok", (topic, event, reply)
        return reply["response"]

    async def run(self, run_id: str, token: str, logs: str, claimed: dict[str, Any]) -> None:
        topic = f"run:{run_id}"
        join_ref = str(next(self._refs))
        if logs == "claim":  # the claim brought the plan; the join comes with the reports
            plan = claimed["plan"]
        elif logs == "reports":  # as fulmen worker joins a coordinator that answers with these
            fetch = {"fetch": ["plan", "dataclip"]}
            plan = (await self.call(topic, "phx_join", {"token": token, **fetch}, join_ref))["plan"]
        else:
            await self.call(topic, "phx_join", {"token": token}, join_ref)
            plan = await self.call(topic, "fetch:plan", {}, join_ref)
            await self.call(topic, "fetch:dataclip", {"id": plan["dataclip_id"]}, join_ref)
        now = time.time_ns() // 1000
        step_id, output_id = str(uuid.uuid4()), str(uuid.uuid4())
        job_id = plan["jobs"][0]["id"]
        lines = [
            {
                "message": [f"line {i}"],
                "source": "JOB",
                "level": "info",
                "timestamp": str(now + i),
                "step_id": step_id,
            }
            for i in range(LINES)
        ]
        start = [
            ("run:start", {"timestamp": str(now)}),
            (
                "step:start",
                {
                    "step_id": step_id,
                    "job_id": job_id,
                    "input_dataclip_id": plan["dataclip_id"],
                    "timestamp": str(now),
                },
            ),
        ]
        end = [
            (
                "step:complete",
                {
                    "step_id": step_id,
                    "job_id": job_id,
                    "reason": "success",
                    "output_dataclip_id": output_id,
                    "output_dataclip": '{"data":{"n":1}}',
                    "timestamp": str(now + LINES),
                    "error_type": None,
                    "error_message": None,
                },
            ),
            (
                "run:complete",
                {
                    "reason": "success",
                    "final_dataclip_id": output_id,
                    "error_type": None,
                    "error_message": None,
                    "timestamp": str(now + LINES + 1),
                },
            ),
        ]
        batch = ("run:batch_logs", {"run_id": run_id, "logs": lines})
        if logs in ("reports", "claim"):  # a short run's reports, to a coordinator that takes it
            frame = [*start, batch, *end]
            reports = [{"event": event, "payload": payload} for event, payload in frame]
            if logs == "claim":  # the join closes the channel: no phx_leave follows
                joined = await self.call(
                    topic, "phx_join", {"token": token, "reports": reports, "leave": True}, join_ref
                )
                assert joined["reports"]["status"] == "ok" and joined["left"], joined
                return
            else:
                await self.call(topic, "run:reports", {"reports": reports}, join_ref)
        else:
            for event, payload in start:
                await self.call(topic, event, payload, join_ref)
            if logs == "batch":
                await self.call(topic, *batch, join_ref)
            else:
                for line in lines:
                    await self.call(topic, "run:log", {"run_id": run_id, **line}, join_ref)
            for event, payload in end:
                await self.call(topic, event, payload, join_ref)
        await self.call(topic, "phx_leave", {}, join_ref)


async def case(keys: keyring.GeneratedKeys, runs: int, in_flight: int, logs: str, loop: str) -> str:
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp:
        server = Coordinator(
            Path(tmp) / "data", keys, log="warning", settings={"FULMEN_EVENT_LOOP": loop}
        )
        await server.start()
        try:
            async with httpx2.AsyncClient(base_url=server.base_url, timeout=60) as http:
                api = Api(http, await server.api_token())
                _flow, hook = await api.workflow({"a": "fn(lambda s: s)\n"}, [], name="bench")
                for i in range(runs):
                    response = await http.post(f"/i/{hook}", json={"i": i})
                    assert response.status_code == 200, response.text
            token = mint_worker_token(keys.worker_secret, "bench", now=time.time())
            url = f"{server.socket_url}/websocket?vsn=2.0.0&token={token}"
            async with websockets.connect(url, compression=None) as socket:
                worker = IdealWorker(socket)
                await worker.call("worker:queue", "phx_join", {"capacity": in_flight}, "q")
                assert server.process is not None
                cpu = cpu_seconds(server.process.pid)
                started = time.perf_counter()
                done = 0

                async def lane() -> None:
                    nonlocal done
                    while done < runs:
                        fetch = {"fetch": ["plan", "dataclip"]} if logs == "claim" else {}
                        claimed = await worker.call(
                            "worker:queue",
                            "claim",
                            {"demand": 1, "languages": ["python"], **fetch},
                            "q",
                        )
                        for run in claimed["runs"]:
                            await worker.run(run["id"], run["token"], logs, run)
                            done += 1
                        if not claimed["runs"]:
                            return

                await asyncio.gather(*(lane() for _ in range(in_flight)))
                elapsed = time.perf_counter() - started
                server_ms = (cpu_seconds(server.process.pid) - cpu) * 1000
        finally:
            await server.stop()
    per_run = server_ms / runs
    per_message = server_ms * 1000 / worker.messages
    return (
        f"{logs:<10}{in_flight:>6}{runs / elapsed:>10.1f}{per_run:>12.2f}"
        f"{worker.messages / runs:>10.1f}{per_message:>12.0f}"
    )


async def main(runs: int, cases: list[tuple[str, int]], loop: str) -> None:
    keys = keyring.generate()
    print(
        f"{runs} runs per case, {LINES} log lines each, on {loop}; coordinator CPU per run "
        "and message"
    )
    print(f"{'logs':<10}{'flight':>6}{'runs/s':>10}{'ms/run':>12}{'msg/run':>10}{'µs/msg':>12}")
    for logs, in_flight in cases:
        print(await case(keys, runs, in_flight, logs, loop), flush=True)


def _cases(text: str) -> list[tuple[str, int]]:
    chosen = []
    for part in text.split(","):
        logs, _, in_flight = part.strip().partition(":")
        if logs not in ("log", "batch", "reports", "claim"):
            raise argparse.ArgumentTypeError(f"log, batch, reports or claim, not {logs!r}")
        chosen.append((logs, int(in_flight)))
    return chosen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="runs per case [500]")
    parser.add_argument(
        "--cases",
        type=_cases,
        default=_cases("log:1,batch:1,batch:8,reports:1,reports:8,claim:1,claim:8"),
        help="logs:in-flight, comma-separated [log:1,batch:1,batch:8,reports:1,reports:8,"
        "claim:1,claim:8]",
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.cases, args.loop))
