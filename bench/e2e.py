"""The whole system, end to end: ``fulmen server`` (SQLite in a temporary data directory) and
``fulmen worker`` as subprocesses on loopback, fed by webhooks. Figures only, no assertions.

For a trivial one-step workflow and a 3-step one, at worker capacity 1 and 5, each case on a
fresh coordinator and worker:

* **solo**: webhooks posted one after another, each answering when its run has ended (a
  ``webhook_reply: after_completion`` trigger), so nothing queues: the latency of one run;
* **burst**: N webhooks posted as fast as the client can (32 in flight), then waited for:
  runs/s and the latency of each run including its time in the queue.

``first`` is the latency of the very first run, before the warm-up runs: for ``py-pinned``
(a package from an index on loopback, ``fulmen_testing.python_index``) it includes installing
the package; ``solo50`` is then the warm run, to compare with ``trivial``'s.

Latency is enqueue → complete from the stored timestamps (the run's ``inserted_at``, set by
the coordinator, to its ``finished_at``, the worker's ``run:complete`` time; same host, same
clock). ``work50`` is the solo runs' median claim → complete: the part of a run's latency
that is not waiting for a worker to hear of it and claim it (``work-available`` reaches a
worker that has claimed since its last push at once, coordinator/nudges.py).

Worker memory is from ``/proc/<pid>/status``: ``VmRSS`` once it has joined and before
any run (idle), the highest ``VmRSS`` sampled during the burst, and ``VmHWM`` at the end
(the peak since start); ``srv HWM`` is the coordinator's. Sandboxed children are forks of the
zygote, a separate process, and are not counted. ``w cpu`` and ``srv cpu``: CPU time (user
and system) the worker and the coordinator spent per burst run, in ms; ``z cpu``, the
worker's sandbox zygote with its children (each run's child, reaped), per burst run, in ms
(``bench/child.py`` splits it); on a shared machine these are steadier than the rates.
``srv cpu`` leaves out this harness's own ``/metrics`` polls while it waits for the burst to
end (every 0.1 s, about 1 ms each: up to 0.2 ms per run), by their measured cost.

``--loop`` picks the event loop of the coordinator and the worker (``FULMEN_EVENT_LOOP``; uvloop,
their default, or asyncio; the harness passes no ``FULMEN_`` setting of the caller's own).

Run: ``.venv/bin/python bench/e2e.py [--runs N] [--solo M] [--cases trivial:1,3-step:5]
[--loop asyncio|uvloop]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2

from fulmen import keys as keyring
from fulmen_testing.e2e import Api, Coordinator, WorkerProcess, cpu_seconds, until, vm_kib
from fulmen_testing.python_index import python_index

WORKFLOWS: dict[str, tuple[dict[str, str], list[tuple[str, str, str]]]] = {
    "trivial": ({"a": "fn(lambda s: {**s, 'data': {'n': 1}})\n"}, []),
    "3-step": (
        {
            "a": "fn(lambda s: {**s, 'data': {'a': 1}})\n",
            "b": "fn(lambda s: {**s, 'data': {**s['data'], 'b': 2}})\n",
            "c": "fn(lambda s: {**s, 'data': {**s['data'], 'c': 3}})\n",
        },
        [("a", "b", "on_job_success"), ("b", "c", "on_job_success")],
    ),
    # OpenFn's JavaScript: Node with OpenFn's runtime in the run's sandbox (issue 15).
    "js-trivial": ({"a": "fn(state => ({ ...state, data: { n: 1 } }))\n"}, []),
    # A pinned third-party package as the adaptor, installed by the worker (issue 16).
    "py-pinned": ({"a": "fn(lambda s: {**s, 'data': {'n': shout(VERSION)}})\n"}, []),
}
#: The adaptor of each workflow's jobs, where it is not Fulmen's Python ``common``.
ADAPTORS = {"js-trivial": "@openfn/language-common@3.3.4", "py-pinned": "fulmen-probe@1.0.0"}
IN_FLIGHT = 32
WARM_UP = 5


@dataclass(frozen=True)
class Figures:
    first: float
    solo: list[float]
    solo_work: list[float]
    burst: list[float]
    runs_per_s: float
    idle_kib: int
    peak_kib: int
    hwm_kib: int
    server_hwm_kib: int
    worker_cpu_ms: float
    server_cpu_ms: float
    zygote_cpu_ms: float


def renamed(
    jobs: dict[str, str], edges: list[tuple[str, str, str]], suffix: str
) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The workflow with job ids of its own (ids are unique across workflows)."""
    return (
        {f"{job}-{suffix}": body for job, body in jobs.items()},
        [(f"{s}-{suffix}", f"{t}-{suffix}", c) for s, t, c in edges],
    )


def latencies_ms(runs: list[dict[str, Any]], since: str = "inserted_at") -> list[float]:
    """Each run's ``since`` → ``finished_at``, in ms, sorted."""
    return sorted(
        (
            datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run[since])
        ).total_seconds()
        * 1000
        for run in runs
    )


def cuts(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return (values[0],) * 3 if values else (float("nan"),) * 3
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98]


async def finished_count(http: httpx2.AsyncClient) -> int:
    """Runs ended, from ``/metrics`` (``fulmen_runs_ended_total``, per final state: a count,
    cheaper than listing runs)."""
    text = (await http.get("/metrics")).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("fulmen_runs_ended_total{")
    )


async def scrape_cpu_seconds(server: Coordinator, http: httpx2.AsyncClient) -> float:
    """The coordinator's CPU for one of this harness's own ``/metrics`` polls (measured on 20
    after the burst, when nothing else runs): taken off the burst's CPU, which is the runs'."""
    assert server.process is not None
    before = cpu_seconds(server.process.pid)
    for _ in range(20):
        await finished_count(http)
    return (cpu_seconds(server.process.pid) - before) / 20


def zygote_pid(worker_pid: int) -> int | None:
    """The worker's sandbox zygote: its child process running ``fulmen.sandbox.zygote``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            command = (entry / "cmdline").read_bytes()
            if parent == worker_pid and b"fulmen.sandbox.zygote" in command:
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return None


def family_cpu_seconds(pid: int | None) -> float:
    """CPU time of ``pid`` and of its children it has reaped (``cutime``, ``cstime``)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def sample_peak(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, vm_kib(pid))
        await asyncio.sleep(0.02)
    return peak


async def case(
    keys: keyring.GeneratedKeys, workflow: str, capacity: int, runs: int, solo: int, loop: str
) -> Figures:
    jobs, edges = WORKFLOWS[workflow]
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp, python_index() as index:
        packages = {"FULMEN_PYTHON_INDEX": index.url}
        server = Coordinator(
            Path(tmp) / "data",
            keys,
            log="warning",
            settings={"FULMEN_EVENT_LOOP": loop, **packages},
        )
        await server.start()
        worker: WorkerProcess | None = None
        try:
            token, started = await asyncio.gather(
                server.api_token(),
                WorkerProcess.start(
                    server,
                    capacity=capacity,
                    settings={
                        "WORKER_LOG_LEVEL": "warn",
                        "FULMEN_EVENT_LOOP": loop,
                        "WORKER_REPO_DIR": str(Path(tmp) / "repo"),
                        **packages,
                    },
                    wait=False,
                ),
            )
            worker = started
            limits = httpx2.Limits(max_connections=IN_FLIGHT)
            async with httpx2.AsyncClient(
                base_url=server.base_url, timeout=120, limits=limits
            ) as http:
                api = Api(http, token)
                await until(
                    lambda: api.get("/health/ready"),
                    lambda ready: ready.get("workers") == 1,
                    what="the worker joining",
                )
                idle = vm_kib(started.pid)
                adaptor = ADAPTORS.get(workflow, "common")
                return await _measure(api, server, started, jobs, edges, runs, solo, idle, adaptor)
        finally:
            if worker is not None:
                await worker.terminate()
            await server.stop()


async def _measure(
    api: Api,
    server: Coordinator,
    worker: WorkerProcess,
    jobs: dict[str, str],
    edges: list[tuple[str, str, str]],
    runs: int,
    solo: int,
    idle: int,
    adaptor: str,
) -> Figures:
    http = api.http
    solo_flow, solo_hook = await api.workflow(
        *renamed(jobs, edges, "solo"), name="solo", reply="after_completion", adaptor=adaptor
    )
    for i in range(WARM_UP + solo):
        response = await http.post(f"/i/{solo_hook}", json={"i": i})
        assert response.status_code == 201, response.text
    every_solo = sorted(await api.runs(solo_flow), key=lambda run: run["inserted_at"])
    solo_runs = every_solo[WARM_UP:]

    burst_flow, burst_hook = await api.workflow(
        *renamed(jobs, edges, "burst"), name="burst", adaptor=adaptor
    )
    before = await finished_count(http)
    assert server.process is not None
    zygote = zygote_pid(worker.pid)
    cpu = cpu_seconds(worker.pid), cpu_seconds(server.process.pid), family_cpu_seconds(zygote)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_peak(worker.pid, stop))
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def post(i: int) -> None:
        async with gate:
            response = await http.post(f"/i/{burst_hook}", json={"i": i})
            assert response.status_code == 200, response.text

    polls = 0

    async def poll() -> int:
        nonlocal polls
        polls += 1
        return await finished_count(http)

    await asyncio.gather(*(post(i) for i in range(runs)))
    await until(
        poll, lambda done: done >= before + runs, timeout=600, every=0.1, what="the burst finishing"
    )
    stop.set()
    worker_cpu = cpu_seconds(worker.pid) - cpu[0]
    server_cpu = cpu_seconds(server.process.pid) - cpu[1]
    server_cpu -= polls * await scrape_cpu_seconds(server, http)
    await asyncio.sleep(0.2)  # the last children reaped
    zygote_cpu = family_cpu_seconds(zygote) - cpu[2]
    peak = await sampler
    burst_runs = await api.runs(burst_flow)
    states = {run["state"] for run in burst_runs + solo_runs}
    assert states == {"success"}, states  # a figure from failed runs would mislead
    first = min(datetime.fromisoformat(run["inserted_at"]) for run in burst_runs)
    last = max(datetime.fromisoformat(run["finished_at"]) for run in burst_runs)
    return Figures(
        first=latencies_ms(every_solo[:1])[0],
        solo=latencies_ms(solo_runs),
        solo_work=latencies_ms(solo_runs, "claimed_at"),
        burst=latencies_ms(burst_runs),
        runs_per_s=len(burst_runs) / (last - first).total_seconds(),
        idle_kib=idle,
        peak_kib=peak,
        hwm_kib=vm_kib(worker.pid, "VmHWM"),
        server_hwm_kib=vm_kib(server.process.pid, "VmHWM"),
        worker_cpu_ms=worker_cpu * 1000 / runs,
        server_cpu_ms=server_cpu * 1000 / runs,
        zygote_cpu_ms=zygote_cpu * 1000 / runs,
    )


def _row(label: str, f: Figures) -> str:
    mb = 1024
    s50, s95, s99 = cuts(f.solo)
    w50, _, _ = cuts(f.solo_work)
    b50, b95, b99 = cuts(f.burst)
    return (
        f"{label:<22}{f.runs_per_s:>8.1f}{f.first:>8.0f}"
        f"{s50:>8.1f}{s95:>8.1f}{s99:>8.1f}{w50:>8.1f}"
        f"{b50:>9.0f}{b95:>8.0f}{b99:>8.0f}"
        f"{f.idle_kib / mb:>8.1f}{f.peak_kib / mb:>8.1f}{f.hwm_kib / mb:>8.1f}"
        f"{f.server_hwm_kib / mb:>8.1f}{f.worker_cpu_ms:>8.1f}{f.server_cpu_ms:>8.1f}"
        f"{f.zygote_cpu_ms:>8.1f}"
    )


async def main(runs: int, solo: int, cases: list[tuple[str, int]], loop: str) -> None:
    keys = keyring.generate()
    print(
        f"{runs} burst runs and {solo} solo runs per case, on {loop}; latency enqueue -> "
        "complete in ms (stored timestamps); memory in MB"
    )
    print(
        f"{'case':<22}{'runs/s':>8}{'first':>8}{'solo50':>8}{'solo95':>8}{'solo99':>8}{'work50':>8}"
        f"{'burst50':>9}{'b95':>8}{'b99':>8}{'w idle':>8}{'w peak':>8}{'w HWM':>8}{'srv HWM':>8}"
        f"{'w cpu':>8}{'srv cpu':>8}{'z cpu':>8}"
    )
    for workflow, capacity in cases:
        figures = await case(keys, workflow, capacity, runs, solo, loop)
        print(_row(f"{workflow}, capacity {capacity}", figures), flush=True)


def _cases(text: str) -> list[tuple[str, int]]:
    chosen = []
    for part in text.split(","):
        name, _, capacity = part.strip().rpartition(":")
        if name not in WORKFLOWS:
            raise argparse.ArgumentTypeError(f"unknown workflow {name!r}")
        chosen.append((name, int(capacity)))
    return chosen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="webhooks per burst [300]")
    parser.add_argument("--solo", type=int, default=50, help="one-at-a-time runs [50]")
    parser.add_argument(
        "--cases",
        type=_cases,
        default=_cases("trivial:1,trivial:5,3-step:1,3-step:5"),
        help="workflow:capacity, comma-separated [trivial:1,trivial:5,3-step:1,3-step:5]",
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.solo, args.cases, args.loop))
