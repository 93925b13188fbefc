"""What a trivial run costs: through the zygote, and through a fresh ``python -c`` per run.

A trivial run is one entry that emits one event (``fulmen.sandbox.probe:echo``), in a zygote
with the sandbox's default preload and in one with the runtime's (its imports make each fork
dearer); then a whole one-step workflow through the runtime's entry, cold and then the way
``fulmen run`` and the worker do it (``execution.start_zygote``: preloaded, warmed up).
Latency is measured from the worker's ``Zygote.run`` call to the exit being known: the child
handed its run, hardened (setsid, Landlock, descriptors, rlimits, capabilities), payload read,
events received, run directory removed. Throughput runs several at once. Prints figures only.

    .venv/bin/python bench/sandbox.py [--runs 1000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial

from fulmen.execution import Defaults, RunRequest, start, start_zygote
from fulmen.plan import Plan
from fulmen.runtime.entry import ENTRY as RUNTIME_ENTRY
from fulmen.runtime.entry import PRELOAD as RUNTIME
from fulmen.sandbox import DEFAULT_PRELOAD, Limits, Zygote
from fulmen.sandbox.isolation import ZYGOTE_ENVIRONMENT

ONE_STEP = {
    "plan": {"jobs": [{"id": "job", "body": "fn(lambda state: state)", "adaptor": "common"}]},
    "input": {"data": {}},
    "credentials": {},
}
FRESH = "import json, sys; sys.stdout.write(json.dumps({'ok': True}))"


async def through_zygote(zygote: Zygote) -> None:
    handle = await zygote.run("fulmen.sandbox.probe:echo", {"ok": True}, Limits(timeout_s=10))
    events = [event async for event in handle]
    assert handle.exit.kind == "ok" and events == [{"ok": True}], handle.exit


async def through_runtime(zygote: Zygote) -> None:
    """A whole one-step workflow through the runtime's entry: what a real trivial run costs."""
    handle = await zygote.run(RUNTIME_ENTRY, ONE_STEP, Limits(timeout_s=10))
    events = [event async for event in handle]
    assert handle.exit.kind == "ok" and events, handle.exit


async def through_execution(zygote: Zygote) -> None:
    """What ``fulmen run`` and the worker do: the warmed zygote, events decoded and checked."""
    request = RunRequest(Plan.from_wire(ONE_STEP["plan"]), {"data": {}})
    execution = await start(zygote, request, Defaults())
    events = [event async for event in execution]
    assert events[-1].exit.ok, events[-1]


async def through_fresh_python() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FRESH,
        stdout=asyncio.subprocess.PIPE,
        env=dict(ZYGOTE_ENVIRONMENT),
    )
    out, _ = await process.communicate()
    assert process.returncode == 0 and out == b'{"ok": true}', out


async def measure(
    label: str, one: Callable[[], Awaitable[None]], runs: int, concurrency: int
) -> None:
    for _ in range(min(20, runs)):  # warm caches and the allocator
        await one()
    latencies = []
    for _ in range(runs):
        start = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    p50 = statistics.median(latencies) * 1e3
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3

    semaphore = asyncio.Semaphore(concurrency)

    async def limited() -> None:
        async with semaphore:
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(runs)))
    throughput = runs / (time.perf_counter() - start)
    print(
        f"{label:<22} {runs / sum(latencies):8.0f} runs/s sequential"
        f"  {throughput:8.0f} runs/s at concurrency {concurrency}"
        f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--fresh-runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    zygotes = (("zygote, default preload", DEFAULT_PRELOAD), ("zygote, runtime preload", RUNTIME))
    for label, preload in zygotes:
        async with await Zygote.start(preload) as zygote:
            if zygote.preload_errors:
                print(f"{label}: could not preload {dict(zygote.preload_errors)}")
            print(f"{label}: {zygote.isolation.summary()}")
            await measure(label, partial(through_zygote, zygote), args.runs, args.concurrency)
            if preload is RUNTIME:
                label = "runtime one-step run"
                await measure(label, partial(through_runtime, zygote), args.runs, args.concurrency)
    async with await start_zygote() as zygote:
        label = "one-step run, warmed zygote"
        await measure(label, partial(through_execution, zygote), args.runs, args.concurrency)
    await measure("fresh python -c", through_fresh_python, args.fresh_runs, args.concurrency)


if __name__ == "__main__":
    asyncio.run(main())
