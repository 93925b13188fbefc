"""Endurance: N runs through one worker connection, watching both processes' memory.

A worker's connection lives for weeks, so nothing the coordinator or the worker keeps per run
may outlive the run (issue 14). This starts ``fulmen server`` (SQLite in a temporary data
directory) and one ``fulmen worker`` as subprocesses on loopback, as bench/e2e.py does, and
pushes N trivial one-step runs through them: ``--concurrency`` clients each post a webhook
that answers when its run has ended (``webhook_reply: after_completion``), so a steady
handful of runs is in flight and nothing piles up in the queue.

Every ``--every`` runs it prints the coordinator's and the worker's RSS (``VmRSS`` from
``/proc``; the sandboxed children are forks of the worker's zygote, separate processes, and
are not counted) and the runs/s over that stretch. At the end: each process's RSS spread
after warm-up (the first ``--warm-up`` runs; the coordinator remembers its latest 4,096 runs,
coordinator/memory.py, so it is not warm before that), the runs that did not succeed, and
how often the worker lost its connection (it must be 0: the point is one connection).

Figures only; the acceptance line (RSS flat within 10% after warm-up over 100,000 runs) is
read off the output.

Run: ``.venv/bin/python bench/endurance.py [--runs 20000] [--every 1000] [--capacity 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from fulmen import keys as keyring
from fulmen_testing.e2e import Api, Coordinator, WorkerProcess, until, vm_kib

JOB = "fn(lambda s: {**s, 'data': {'n': 1}})\n"
LOST = r"lost the connection"


@dataclass
class Tally:
    """What the clients have seen so far, and the RSS samples taken at each checkpoint."""

    every: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    last_at: float = field(default_factory=time.monotonic)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # runs, server, worker


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def checkpoint(tally: Tally, server_pid: int, worker_pid: int) -> None:
    now = time.monotonic()
    rate = tally.every / (now - tally.last_at) if now > tally.last_at else 0.0
    tally.last_at = now
    server, worker = vm_kib(server_pid), vm_kib(worker_pid)
    tally.samples.append((tally.done, server, worker))
    print(
        f"{tally.done:>8}{now - tally.started:>10.0f}{rate:>9.1f}"
        f"{mib(server):>11}{mib(worker):>11}{tally.failed:>8}",
        flush=True,
    )


def spread(values: list[int]) -> str:
    """min, max and (max - min) / min of the samples, as text."""
    if not values:
        return "no samples after warm-up"
    low, high = min(values), max(values)
    return f"{mib(low)}..{mib(high)} MiB, spread {(high - low) / low * 100:.1f}%"


async def drive(
    http: httpx2.AsyncClient,
    hook: str,
    runs: int,
    concurrency: int,
    tally: Tally,
    pids: tuple[int, int],
) -> None:
    posted = 0

    async def client() -> None:
        nonlocal posted
        while posted < runs:
            posted += 1
            response = await http.post(f"/i/{hook}", json={"i": posted})
            tally.done += 1
            if response.status_code != 201 or response.headers.get("x-run-state") != "success":
                tally.failed += 1
                if tally.failed <= 5:
                    print(f"# run {tally.done}: {response.status_code} {response.text[:200]}")
            if tally.done % tally.every == 0:
                checkpoint(tally, *pids)

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def main(args: argparse.Namespace) -> None:
    keys = keyring.generate()
    with tempfile.TemporaryDirectory(prefix="fulmen-endurance-") as tmp:
        server = Coordinator(Path(tmp) / "data", keys, log="warning")
        await server.start()
        worker: WorkerProcess | None = None
        try:
            token, started = await asyncio.gather(
                server.api_token(),
                WorkerProcess.start(
                    server,
                    capacity=args.capacity,
                    settings={"WORKER_LOG_LEVEL": "warn"},
                    wait=False,
                ),
            )
            worker = started
            await endure(args, server, started, token)
        finally:
            if worker is not None:
                await worker.terminate()
            await server.stop()


async def endure(
    args: argparse.Namespace, server: Coordinator, worker: WorkerProcess, token: str
) -> None:
    assert server.process is not None
    pids = (server.process.pid, worker.pid)
    limits = httpx2.Limits(max_connections=args.concurrency)
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as http:
        api = Api(http, token)
        await until(
            lambda: api.get("/health/ready"),
            lambda ready: ready.get("workers") == 1,
            what="the worker joining",
        )
        _, hook = await api.workflow({"a": JOB}, [], name="endurance", reply="after_completion")
        print(
            f"{args.runs} runs, capacity {args.capacity}, {args.concurrency} clients; "
            f"coordinator pid {pids[0]}, worker pid {pids[1]}"
        )
        print(f"{'runs':>8}{'secs':>10}{'runs/s':>9}{'srv MiB':>11}{'wrk MiB':>11}{'failed':>8}")
        tally = Tally(args.every)
        print(f"{0:>8}{0:>10}{'':>9}{mib(vm_kib(pids[0])):>11}{mib(vm_kib(pids[1])):>11}{0:>8}")
        await drive(http, hook, args.runs, args.concurrency, tally, pids)
    elapsed = time.monotonic() - tally.started
    warm = [sample for sample in tally.samples if sample[0] > args.warm_up]
    print(f"# {tally.done} runs in {elapsed:.0f}s, {tally.done / elapsed:.1f} runs/s")
    print(f"# after {args.warm_up} runs: coordinator {spread([s[1] for s in warm])}")
    print(f"# after {args.warm_up} runs: worker {spread([s[2] for s in warm])}")
    print(f"# runs not successful: {tally.failed}")
    print(f"# worker reconnects: {worker.output.count(LOST)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs in all [20000]")
    parser.add_argument("--every", type=int, default=1_000, help="runs between samples [1000]")
    parser.add_argument("--capacity", type=int, default=2, help="the worker's capacity [2]")
    parser.add_argument("--concurrency", type=int, default=4, help="webhook clients [4]")
    parser.add_argument(
        "--warm-up", type=int, default=5_000, help="runs before the spread is measured [5000]"
    )
    asyncio.run(main(parser.parse_args()))
