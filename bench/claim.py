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
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewDataclip,
    Priority,
    Project,
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
        (str(uuid4()), work_order_id, "w", "p", snapshot_id, "t", "available", "default", 1)
        for _ in range(count)
    ]


COLUMNS = (
    "id, work_order_id, workflow_id, project_id, snapshot_id, starting_node_id, state, queue,"
    " priority, options, inserted_at"
)


def load_sqlite(url: str, rows: list[tuple[object, ...]]) -> None:
    now = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // _MICRO
    with sqlite3.connect(sqlite_path(url)) as conn:
        conn.executemany(
            f"INSERT INTO runs ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{{}}', ?)",
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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


async def bench_sqlite(sizes: list[int]) -> list[dict[str, str]]:
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            results.append({"backend": "sqlite", **await measure(url, size, load_sqlite)})
    return results


async def bench_postgres(sizes: list[int]) -> list[dict[str, str]]:
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
                results.append({"backend": "postgres", **await measure(url, size, load_postgres)})
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
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rows: list[dict[str, str]] = []
    if "sqlite" in args.backends:
        rows += await bench_sqlite(sizes)
    if "postgres" in args.backends:
        rows += await bench_postgres(sizes)
    if rows:
        print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
