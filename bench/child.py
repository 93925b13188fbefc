"""Where a trivial run's CPU goes: the worker, the zygote, the child; and the child's page faults.

Runs one-step workflows one after another through the zygote that ``fulmen run`` and the
worker use (as ``execution.start_zygote`` makes it: the runtime preloaded and warmed up,
isolation as the host allows), each started the way the worker starts it
(``execution.start``), and reads the CPU time each process spent over all of them, per run:

* **worker**: this process (``getrusage``): encoding the payload, the run and output
  descriptors, reading and decoding the events, the exit;
* **zygote**: the zygote itself (``/proc/<pid>/schedstat``): receiving the header, handing it to
  a spare, forking and admitting the next spare (ids, cgroup), reaping;
* **child**: its children once reaped (``cutime`` + ``cstime``, and ``cminflt``, the minor
  page faults, nearly all copy-on-write of the zygote's heap): a spare's whole life, from the
  fork through its confinement and warm-up to the run and its exit.

On a machine shared with other work these CPU figures hold far better than the latencies,
which are printed too (p50 and p99 of ``execution.start`` to the last event). ``--phases``
also preloads ``bench/child_phases.py`` into the zygote, which timestamps each step of a
spare's life and prints a table of them (it costs a little CPU of its own). ``--no-warm-up``
starts the zygote without ``WARM_UP``, to weigh what the spare's warm-up buys. Figures only.

    .venv/bin/python bench/child.py [--runs 300] [--gap-ms 0] [--phases] [--no-warm-up]

What the figures have shown (December 2026, 2 vCPUs in a VM, Python 3.11):

* Nearly half of a child's CPU is copy-on-write faults on the zygote's heap (``perf record``
  of the children: 41 % in ``asm_exc_page_fault``, some 2.5-3 us each here, against about
  1 us for a plain page copy: the page-table lock, a TLB flush and the memory cgroup's
  charge come with each). Python 3.11 writes a reference count into every object it
  touches, so the faults follow the code a child runs, not the data it makes: the first
  Python code after the fork alone (``fork -> forked``: the at-fork hooks of threading,
  logging and random, then the spare's first steps) took some 270, about 150 since the
  zygote forks with libc's ``fork`` (``sandbox/libc.py``: no hooks; the child reseeds
  random). A page costs the same copied by a fault or ahead of time by
  ``madvise(MADV_POPULATE_WRITE)`` (2.3 us each here, measured on 1000 pages of this heap:
  the copy, the memory cgroup's charge and the page-table lock, not the trap), so
  prefaulting buys nothing; only touching fewer pages does. Of a child's ~930 faults, ~580
  are in anonymous mappings (pymalloc's arenas), ~130 in the brk heap and ~105 in
  libpython's own data (``None``, small ints and static types' reference counts: every
  child writes nearly all of that segment). A run that walks less
  code touches fewer pages: that is why the engine makes no event loop for plain operations
  (-130 faults). New objects cost faults too when they land in the holes of the zygote's
  allocator pools: the zygote fills those before it forks (``sandbox/pools.py``, -80).
* What a child writes, word by word (``bench/cow_pages.py``: the pages a spare's warm-up run
  copies, compared with the zygote's at the fork): few objects end up changed, so most
  copies come from reference counts taken and dropped again. Of what does change, CPython
  3.11's bytecode counters were a part: a function's first eight calls are counted in its
  code object, which is then rewritten into its specialised form. The zygote calls each
  warm-up nine times, so that happens there once (-45 faults per child); the inline caches
  of call sites that will not specialise still count down in every child.
* The spare's warm-up costs no CPU in all: without it the child's total is the same (the
  run takes the same faults itself), but the run's own step goes from about 1.2 ms of CPU
  to 3.3 ms: the warm-up takes some 2 ms off each run's latency.
* The floor, for this zygote (21 MB of anonymous memory): a bare fork and ``_exit`` with no
  Python run in between costs the child about 0.43 ms and the zygote 0.3-0.4 ms (``os.fork``,
  with its hooks: 0.9 ms and 240 faults in the child).
* Exit costs too: a child's CPU counted at its reaping exceeds what it counted itself just
  before ``_exit`` by 0.4-0.8 ms (the address space torn down: every page it shares with
  the zygote unmapped). That and the fork (about 20 us per MB of the zygote's anonymous
  memory, 0.55 ms for its 21 MB) are why every module the zygote imports costs every run.
* The system calls of a spare's life are few (about 145; ``strace -ff``): its set-up is
  0.4 ms of kernel time (the unshares 0.17, seccomp's filter 0.1, the mounts, Landlock).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import itertools
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fulmen.execution import Defaults, RunRequest, start
from fulmen.plan import Plan
from fulmen.runtime.entry import PRELOAD, WARM_UP
from fulmen.sandbox import Zygote

HERE = Path(__file__).resolve().parent
PLAN = {"jobs": [{"id": "job", "body": "fn(lambda state: state)", "adaptor": "common"}]}


def proc_stat(pid: int) -> list[int]:
    """minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime (``proc(5)``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return [int(x) for x in fields[7:15]]


def schedstat_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


async def one_run(zygote: Zygote, request: RunRequest) -> tuple[float, dict[str, Any] | None]:
    began, asked_ns = time.perf_counter(), time.monotonic_ns()
    execution = await start(zygote, request, Defaults())
    trace = None
    async for event in execution:
        message = getattr(event, "message", None)
        if message and isinstance(message[0], str) and message[0].startswith("phases "):
            trace = {"asked": asked_ns, **ast.literal_eval(message[0][7:])}  # child_phases.py
    assert execution.exit is not None and execution.exit.kind == "ok", execution.exit
    return time.perf_counter() - began, trace


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause between runs [0]")
    parser.add_argument("--phases", action="store_true", help="timestamp each step of a spare")
    parser.add_argument(
        "--no-warm-up", action="store_true", help="spares wait for their run cold (no WARM_UP)"
    )
    args = parser.parse_args()
    # What execution.start_zygote starts, with the phases' module preloaded when asked.
    preload = (*PRELOAD, "child_phases") if args.phases else PRELOAD
    extra_path = [str(HERE)] if args.phases else []
    zygote = await Zygote.start(preload, extra_path, warm_up=() if args.no_warm_up else WARM_UP)
    try:
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        print(zygote.isolation.summary())
        await measure(zygote, args.runs, args.gap_ms / 1000)
    finally:
        await zygote.close()


async def measure(zygote: Zygote, runs: int, gap_s: float) -> None:
    request = RunRequest(Plan.from_wire(PLAN), {"data": {}})
    pid = zygote.pid
    assert pid is not None
    for _ in range(20):  # the allocator, the caches, both spares
        await one_run(zygote, request)
    await asyncio.sleep(0.2)
    before, zygote_ns = proc_stat(pid), schedstat_ns(pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies, traces = [], []
    for _ in range(runs):
        took, trace = await one_run(zygote, request)
        latencies.append(took)
        if trace is not None:
            traces.append(trace)
        if gap_s:
            await asyncio.sleep(gap_s)
    after_usage = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(0.3)  # the last child reaped
    after, zygote_ns = proc_stat(pid), schedstat_ns(pid) - zygote_ns
    delta = [b - a for a, b in zip(before, after, strict=True)]
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    worker_s = (after_usage.ru_utime + after_usage.ru_stime) - (usage.ru_utime + usage.ru_stime)
    child_us = (delta[6] + delta[7]) * tick_us / runs
    latencies.sort()
    print(f"{runs} one-step runs, one at a time; per run:")
    print(f"  worker CPU   {worker_s * 1e6 / runs:7.0f} us")
    print(f"  zygote CPU   {zygote_ns / 1e3 / runs:7.0f} us   minor faults {delta[0] / runs:5.0f}")
    print(
        f"  child CPU    {child_us:7.0f} us   minor faults {delta[1] / runs:5.0f}"
        f"   (user {delta[6] * tick_us / runs:.0f}, system {delta[7] * tick_us / runs:.0f})"
    )
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"  latency      p50 {statistics.median(latencies) * 1e3:.2f} ms  p99 {p99 * 1e3:.2f} ms")
    if traces:
        print_phases(traces)


def print_phases(traces: list[dict[str, Any]]) -> None:
    """Median wall time, CPU and minor faults of each step between two of a spare's marks."""
    wall, cpu, faults = defaultdict(list), defaultdict(list), defaultdict(list)
    ready = 0
    for trace in traces:
        marks = trace["marks"]
        for (a, t0, c0, f0), (b, t1, c1, f1) in itertools.pairwise(marks):
            wall[f"{a} -> {b}"].append((t1 - t0) / 1e3)
            cpu[f"{a} -> {b}"].append((c1 - c0) / 1e3)
            faults[f"{a} -> {b}"].append(f1 - f0)
        ready += next(at for name, at, _, _ in marks if name == "warmed") < trace["asked"]
    print(f"\nA spare's life, medians over {len(traces)} runs (wall includes waiting):")
    print(f"  {'step':<28}{'wall us':>10}{'CPU us':>10}{'faults':>8}")
    for step in wall:
        print(
            f"  {step:<28}{statistics.median(wall[step]):>10.0f}"
            f"{statistics.median(cpu[step]):>10.0f}{statistics.median(faults[step]):>8.0f}"
        )
    print(f"  spares warmed up before the worker asked for their run: {ready}/{len(traces)}")


if __name__ == "__main__":
    asyncio.run(main())
