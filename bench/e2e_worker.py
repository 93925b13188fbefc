"""The worker alone, end to end: ``fulmen worker`` (a real subprocess with its sandbox) against
the tests' scripted Lightning on loopback. Not the issue's ``bench/e2e.py``, which needs the
real coordinator; this isolates the worker's share of the cost.

For capacity 1 and 5, and for a trivial job and a 3-step workflow: N runs are queued at once
(one ``work-available``), and it prints runs/s, enqueue → ``run:complete`` p50/p95/p99, and the
worker process's RSS idle and at its peak under load (children not included: each run's
child is a fresh fork of the zygote).

Run: ``.venv/bin/python bench/e2e_worker.py [runs-per-case]``
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from fulmen_testing.worker import Lightning, ScriptedRun, job, keys, plan, private_key

TRIVIAL = plan(job("a", "fn(lambda s: {**s, 'data': {'n': 1}})\n"))
THREE_STEPS = plan(
    job("a", "fn(lambda s: {**s, 'data': {'a': 1}})\n"),
    job("b", "fn(lambda s: {**s, 'data': {**s['data'], 'b': 2}})\n"),
    job("c", "fn(lambda s: {**s, 'data': {**s['data'], 'c': 3}})\n"),
    edges=[
        {"id": "ab", "source_job_id": "a", "target_job_id": "b"},
        {"id": "bc", "source_job_id": "b", "target_job_id": "c"},
    ],
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def start_worker(lightning: Lightning, capacity: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "WORKER_SECRET": keys().worker_secret,
        "WORKER_LIGHTNING_PUBLIC_KEY": keys().public_key,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fulmen",
        "worker",
        f"--lightning={lightning.url}",
        f"--capacity={capacity}",
        "--port=0",
        "--health-host=127.0.0.1",
        "--log=warn",
        env=env,
    )


async def sample_peak(pid: int, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, rss_mb(pid))
        await asyncio.sleep(0.02)
    return peak


async def case(capacity: int, workflow: dict[str, Any], runs: int) -> dict[str, float]:
    async with Lightning(secret=keys().worker_secret, private_key=private_key()) as lightning:
        process = await start_worker(lightning, capacity)
        await lightning.wait_for(lambda: bool(lightning.named("phx_join", "worker:queue")))
        idle = rss_mb(process.pid)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_peak(process.pid, stop))
        queued: dict[str, float] = {}
        for i in range(runs):
            run_id = f"run-{i}"
            queued[run_id] = time.monotonic()
            lightning.enqueue(ScriptedRun(run_id, workflow), wakeup=i == runs - 1)
        start = min(queued.values())
        await lightning.wait_for(lambda: len(lightning.completions) == runs, timeout=600)
        stop.set()
        peak = await sampler
        done = {run_id: rec.at for run_id, rec in lightning.completions.items()}
        elapsed = max(done.values()) - start
        process.terminate()
        await process.wait()
    latencies = sorted((done[r] - queued[r]) * 1000 for r in queued)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "runs/s": runs / elapsed,
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "idle": idle,
        "peak": peak,
    }


async def main(runs: int) -> None:
    print(f"{runs} runs per case; latency is enqueue -> run:complete, ms; RSS of the worker, MB")
    print(f"{'case':<24}{'runs/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'idle':>8}{'peak':>8}")
    for name, workflow in (("trivial", TRIVIAL), ("3-step", THREE_STEPS)):
        for capacity in (1, 5):
            r = await case(capacity, workflow, runs)
            label = f"{name}, capacity {capacity}"
            print(
                f"{label:<24}{r['runs/s']:>8.1f}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['p99']:>8.1f}"
                f"{r['idle']:>8.1f}{r['peak']:>8.1f}"
            )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
