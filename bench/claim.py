"""Claim cost with a short and a long queue, on SQLite and PostgreSQL. Prints figures only.

    .venv/bin/python bench/claim.py [--sizes 100,100000] [--backends sqlite,postgres]

For each backend and queue length N, on a fresh store:

* N cron runs (priority 1) are bulk-loaded straight into the runs table (executemany on
  SQLite, COPY on PostgreSQL), then ANALYZE;
* enqueue -> claim: a manual run is enqueued and claimed with ["manual", "*"] (it is
  claimed next, ahead of the backlog); the time from the enqueue call to the claim's answer;
* claim: one run is claimed from the backlog with ["*"] (timed), then put back with
  rollback_claims (not timed), so the queue stays N long;
* drain: four concurrent claimers take up to 2,000 runs; claims per second.

The aim (issue 4): the claim costs the same with 100,000 runs queued as with 100. PostgreSQL
is the server at FULMEN_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
postgres), in a scratch database created and dropped here.

With concurrency limits in force (issue 8; ``--limited 10000``, on by default): 100 workflows
each limited to 2 runs in flight, 10,000 runs over them bulk-loaded, then

* claim: one run claimed with ["*"] (timed; the claim ranks every rationed workflow's head,
  under the limits lock on PostgreSQL), then put back;
* claim+finish: four concurrent claimers each claim one run and complete it at once, until
  2,000 runs are done (claims per second, and the claims' p50/p95 under contention).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import psycopg
from psycopg import sql

from fulmen.plan import Edge, Job
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewDataclip,
    Priority,
    Project,
    RunCompletion,
    SQLStore,
    Workflow,
    WorkflowTrigger,
    open_store,
    sqlite_path,
)

SERVER_URL = os.environ.get(
    "FULMEN_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LATENCY_ROUNDS = 200
CLAIM_ROUNDS = 1000
DRAIN_MAX = 2000
DRAINERS = 4
LIMITED_WORKFLOWS = 100
LIMIT = 2

Loader = Callable[[str, list[tuple[object, ...]]], None]
_MICRO = datetime.resolution  # one microsecond: SQLite's time unit


async def seed(store: SQLStore) -> tuple[str, str]:
    """A project and a one-job workflow; its work order and snapshot ids for the backlog."""
    await store.create_project(Project(id="p", name="bench"))
    await store.create_workflow(
        Workflow(
            id="w",
            project_id="p",
            name="bench",
            jobs=(Job(id="j", body="fn(x)", adaptor="common"),),
            triggers=(WorkflowTrigger(id="t"),),
            edges=(Edge(id="e", source_trigger_id="t", target_job_id="j"),),
        )
    )
    made = await store.enqueue(EnqueueRequest(workflow_id="w", trigger_id="t"))
    await store.claim(1, ["*"])  # this one run is only there for its work order
    snapshot_id = (await store.get_run(made.run_id)).run.snapshot_id
    return made.work_order_id, snapshot_id


def backlog(count: int, work_order_id: str, snapshot_id: str) -> list[tuple[object, ...]]:
    return [
        (str(uuid4()), work_order_id, "w", "p", snapshot_id, "t", "available", "default", 1, False)
        for _ in range(count)
    ]


COLUMNS = (
    "id, work_order_id, workflow_id, project_id, snapshot_id, starting_node_id, state, queue,"
    " priority, limited, options, inserted_at"
)


def load_sqlite(url: str, rows: list[tuple[object, ...]]) -> None:
    now = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // _MICRO
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.executemany(
            f"INSERT INTO runs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{{}}', ?)",
            [(*row, now) for row in rows],
        )
        conn.execute("ANALYZE")


def load_postgres(url: str, rows: list[tuple[object, ...]]) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy(f"COPY runs ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, "{}", now))
        conn.execute("ANALYZE runs")


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def measure(url: str, size: int, load: Loader) -> dict[str, str]:
    async with await open_store(url, max_connections=DRAINERS + 1) as store:
        work_order_id, snapshot_id = await seed(store)
        started = time.perf_counter()
        load(url, backlog(size, work_order_id, snapshot_id))
        loaded = time.perf_counter() - started

        manual = EnqueueRequest(
            workflow_id="w",
            trigger_id="t",
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"n": 1}),
            queue="manual",
            priority=Priority.IMMEDIATE,
        )

        async def enqueue_then_claim() -> None:
            made = await store.enqueue(manual)
            [claimed] = await store.claim(1, ["manual", "*"], "bench")
            assert claimed.id == made.run_id

        latency = [await timed(enqueue_then_claim) for _ in range(LATENCY_ROUNDS)]

        claims: list[float] = []
        for _ in range(CLAIM_ROUNDS):
            start = time.perf_counter()
            [claimed] = await store.claim(1, ["*"], "bench")
            claims.append(time.perf_counter() - start)
            await store.rollback_claims([claimed.id])

        drained = 0

        async def drainer() -> None:
            nonlocal drained
            while drained < DRAIN_MAX and await store.claim(1, ["*"], "bench"):
                drained += 1

        start = time.perf_counter()
        await asyncio.gather(*(drainer() for _ in range(DRAINERS)))
        drain_time = time.perf_counter() - start

    return {
        "queued": f"{size:,}",
        "load s": f"{loaded:.2f}",
        "enq→claim p50 ms": _ms(statistics.median(latency)),
        "enq→claim p95 ms": _ms(_p95(latency)),
        "claim p50 ms": _ms(statistics.median(claims)),
        "claim p95 ms": _ms(_p95(claims)),
        "claims/s (1 claimer)": f"{len(claims) / sum(claims):,.0f}",
        f"claims/s ({DRAINERS} claimers)": f"{drained / drain_time:,.0f} ({drained:,} runs)",
    }


async def seed_limited(store: SQLStore) -> list[tuple[str, str, str]]:
    """A project of LIMITED_WORKFLOWS one-job workflows, each limited to LIMIT runs in
    flight; per workflow (id, a work order, its snapshot) for the backlog."""
    await store.create_project(Project(id="p", name="bench"))
    made = []
    for n in range(LIMITED_WORKFLOWS):
        workflow = Workflow(
            id=f"w{n}",
            project_id="p",
            name=f"bench {n}",
            jobs=(Job(id=f"j{n}", body="fn(x)", adaptor="common"),),
            triggers=(WorkflowTrigger(id=f"t{n}"),),
            edges=(Edge(id=f"e{n}", source_trigger_id=f"t{n}", target_job_id=f"j{n}"),),
            concurrency=LIMIT,
        )
        stored = await store.create_workflow(workflow)
        order = await store.enqueue(EnqueueRequest(workflow_id=workflow.id, trigger_id=f"t{n}"))
        await store.cancel_run(order.run_id)  # only there for its work order
        made.append((workflow.id, order.work_order_id, stored.snapshot_id))
    return made


def limited_backlog(size: int, workflows: list[tuple[str, str, str]]) -> list[tuple[object, ...]]:
    rows = []
    for i in range(size):
        workflow_id, work_order_id, snapshot_id = workflows[i % len(workflows)]
        trigger_id = "t" + workflow_id[1:]
        rows.append(
            (str(uuid4()), work_order_id, workflow_id, "p", snapshot_id, trigger_id, "available",
             "default", 1, True)
        )  # fmt: skip
    return rows


async def measure_limited(url: str, size: int, load: Loader) -> dict[str, str]:
    async with await open_store(url, max_connections=DRAINERS + 1) as store:
        workflows = await seed_limited(store)
        started = time.perf_counter()
        load(url, limited_backlog(size, workflows))
        loaded = time.perf_counter() - started

        claims: list[float] = []
        for _ in range(CLAIM_ROUNDS):
            start = time.perf_counter()
            [claimed] = await store.claim(1, ["*"], "bench")
            claims.append(time.perf_counter() - start)
            await store.rollback_claims([claimed.id])

        done = 0
        contended: list[float] = []
        success = RunCompletion(ExitReason(Reason.SUCCESS))

        async def drainer() -> None:
            nonlocal done
            while done < DRAIN_MAX:
                start = time.perf_counter()
                got = await store.claim(1, ["*"], "bench")
                contended.append(time.perf_counter() - start)
                for run in got:
                    await store.join_run(run.id)
                    await store.complete_run(run.id, success)
                    done += 1

        start = time.perf_counter()
        await asyncio.gather(*(drainer() for _ in range(DRAINERS)))
        drain_time = time.perf_counter() - start

    return {
        "queued": f"{size:,} over {LIMITED_WORKFLOWS} workflows (limit {LIMIT})",
        "load s": f"{loaded:.2f}",
        "claim p50 ms": _ms(statistics.median(claims)),
        "claim p95 ms": _ms(_p95(claims)),
        f"claim p50/p95 ms ({DRAINERS} claimers)": (
            f"{_ms(statistics.median(contended))}/{_ms(_p95(contended))}"
        ),
        f"claim+finish/s ({DRAINERS} claimers)": f"{done / drain_time:,.0f} ({done:,} runs)",
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


Measure = Callable[[str, int, Loader], Awaitable[dict[str, str]]]


async def bench_sqlite(sizes: list[int], how: Measure = measure) -> list[dict[str, str]]:
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            results.append({"backend": "sqlite", **await how(url, size, load_sqlite)})
    return results


async def bench_postgres(sizes: list[int], how: Measure = measure) -> list[dict[str, str]]:
    try:
        admin = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        print(f"PostgreSQL skipped: {SERVER_URL} unreachable ({str(error).strip()[:80]})")
        return []
    results = []
    with admin:
        for size in sizes:
            name = f"fulmen_bench_{uuid4().hex[:10]}"
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                url = f"{SERVER_URL.rpartition('/')[0]}/{name}"
                results.append({"backend": "postgres", **await how(url, size, load_postgres)})
            finally:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    return results


def table(rows: list[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    lines = [" | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(r[h].rjust(w) for h, w in zip(headers, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--limited", default="10000", help="runs queued under limits (comma-separated; 0: skip)"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if int(size)]
    limited = [int(size) for size in args.limited.split(",") if int(size)]
    for sized, how in ((sizes, measure), (limited, measure_limited)):
        rows: list[dict[str, str]] = []
        if sized and "sqlite" in args.backends:
            rows += await bench_sqlite(sized, how)
        if sized and "postgres" in args.backends:
            rows += await bench_postgres(sized, how)
        if rows:
            print(table(rows) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
