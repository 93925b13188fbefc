"""The retention sweep (issue 8) on a store of 100,000 runs, on SQLite and PostgreSQL: runs
are bulk-loaded straight into the tables (INSERT … SELECT over a series), then the
coordinator's sweep applies a 30-day history and a 7-day body period in bounded batches,
while claims go on beside it without waiting for more than a batch."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from fulmen.coordinator import build_coordinator
from fulmen.coordinator.retention import Retention
from fulmen.store import EnqueueRequest, Project, SQLStore, sqlite_path
from fulmen.store.db import to_micros
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import seed, settings
from fulmen_testing.operator import BACKENDS, store_at

pytestmark = pytest.mark.anyio

TOTAL = 100_000
#: Of the runs: 40 days old (history goes), 10 days old (bodies go), 1 day old (all kept).
SHARES = {40: 40_000, 10: 30_000, 1: 30_000}
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: Each age's rows are made by the database itself, from a series of numbers (a few seconds
#: for 300,000 rows, where sending them one by one takes many). Ids are "<age>-<n>-d|o|r",
#: time-ordered as UUIDv7s are: rows made together sit together in the indexes (random ids
#: would make every insert, and every delete, touch another page of every index).
SQLITE_LOAD = [
    """
    WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
    INSERT INTO dataclips (id, project_id, type, body, inserted_at)
    SELECT printf('%s-%06d-d', :age, i), :project_id, 'http_request', '{"n": 1}', :at FROM n
    """,
    """
    WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
    INSERT INTO work_orders (id, workflow_id, trigger_id, dataclip_id, inserted_at)
    SELECT printf('%s-%06d-o', :age, i), :workflow_id, :trigger_id,
           printf('%s-%06d-d', :age, i), :at
    FROM n
    """,
    """
    WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
    INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id, dataclip_id,
                      starting_node_id, state, queue, priority, options, inserted_at,
                      claimed_at, started_at, finished_at)
    SELECT printf('%s-%06d-r', :age, i), printf('%s-%06d-o', :age, i), :workflow_id,
           :project_id, :snapshot_id, printf('%s-%06d-d', :age, i), :trigger_id, 'success',
           'default', 0, '{}', :at, :at, :at, :at
    FROM n
    """,
]
POSTGRES_LOAD = [
    """
    INSERT INTO dataclips (id, project_id, type, body, inserted_at)
    SELECT format('%%s-%%s-d', %(age)s::text, lpad(i::text, 6, '0')), %(project_id)s,
           'http_request', '{"n": 1}', %(at)s
    FROM generate_series(0, %(count)s - 1) AS n (i)
    """,
    """
    INSERT INTO work_orders (id, workflow_id, trigger_id, dataclip_id, inserted_at)
    SELECT format('%%s-%%s-o', %(age)s::text, lpad(i::text, 6, '0')), %(workflow_id)s,
           %(trigger_id)s, format('%%s-%%s-d', %(age)s::text, lpad(i::text, 6, '0')), %(at)s
    FROM generate_series(0, %(count)s - 1) AS n (i)
    """,
    """
    INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id, dataclip_id,
                      starting_node_id, state, queue, priority, options, inserted_at,
                      claimed_at, started_at, finished_at)
    SELECT format('%%s-%%s-r', %(age)s::text, lpad(i::text, 6, '0')),
           format('%%s-%%s-o', %(age)s::text, lpad(i::text, 6, '0')), %(workflow_id)s,
           %(project_id)s, %(snapshot_id)s,
           format('%%s-%%s-d', %(age)s::text, lpad(i::text, 6, '0')),
           %(trigger_id)s, 'success', 'default', 0, '{}', %(at)s, %(at)s, %(at)s, %(at)s
    FROM generate_series(0, %(count)s - 1) AS n (i)
    """,
]


def load(dialect: str, url: str, ids: dict[str, str]) -> None:
    """Every age's dataclips, work orders and runs, straight into the tables."""
    groups = [
        {**ids, "age": f"{100 - age:03d}", "count": count, "at": NOW - timedelta(days=age)}
        for age, count in SHARES.items()
    ]
    if dialect == "sqlite":
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
            for group in groups:
                for sql in SQLITE_LOAD:
                    conn.execute(sql, {**group, "at": to_micros(group["at"])})
        return
    with psycopg.connect(url) as conn:
        # The rows are consistent by construction: skip the foreign keys' per-row triggers.
        conn.execute("SET LOCAL session_replication_role = replica")
        for group in groups:
            for sql in POSTGRES_LOAD:
                conn.execute(sql, group)
        conn.commit()
        conn.execute("ANALYZE")


async def counts(store: SQLStore, url: str) -> dict[str, int]:
    queries = {
        "work_orders": "SELECT count(*) FROM work_orders",
        "runs": "SELECT count(*) FROM runs",
        "dataclips": "SELECT count(*) FROM dataclips",
        "bodies": "SELECT count(*) FROM dataclips WHERE body IS NOT NULL",
    }
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            return {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}
    async with await psycopg.AsyncConnection.connect(url) as pg:
        return {k: (await (await pg.execute(q)).fetchone())[0] for k, q in queries.items()}  # type: ignore[index]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_sweep_on_a_store_of_100000_runs(backend: str, tmp_path: Path) -> None:
    started = time.monotonic()
    clock = FakeClock(NOW)
    async with store_at(backend, tmp_path, clock=clock) as (store, url):
        seeded = await seed(store)
        snapshot_id = (await store.get_workflow(seeded.workflow_id)).snapshot_id
        ids = {
            "project_id": seeded.project_id,
            "workflow_id": seeded.workflow_id,
            "trigger_id": seeded.webhook_id,
            "snapshot_id": snapshot_id,
        }
        await asyncio.to_thread(load, backend, url, ids)
        # An old work order whose run has not ended yet: kept whole, input and all.
        clock.set(NOW - timedelta(days=45))
        await store.enqueue(EnqueueRequest(seeded.workflow_id))
        clock.set(NOW)
        project = await store.get_project(seeded.project_id)
        await store.replace_project(
            Project(
                id=project.id,
                name=project.name,
                history_retention_period=30,
                dataclip_retention_period=7,
            )
        )
        before = await counts(store, url)
        assert before["runs"] == TOTAL + 1
        loaded = time.monotonic() - started

        coordinator = build_coordinator(
            settings(retention_batch=1000, retention_pause=0.001), store, clock=clock
        )
        claims: list[float] = []
        sweeping = asyncio.get_running_loop().create_task(Retention(coordinator).sweep())
        while not sweeping.done():  # the queue goes on meanwhile
            await store.enqueue(EnqueueRequest(seeded.workflow_id))
            asked = time.monotonic()
            claimed = await store.claim(1, ["*"], "beside-the-sweep")
            claims.append(time.monotonic() - asked)
            assert len(claimed) == 1  # this one, or one made before: none waits long
        done = await sweeping
        after = await counts(store, url)
        swept = time.monotonic() - started - loaded

    print(
        f"\n{backend}: loaded {TOTAL:,} runs in {loaded:.1f}s, swept in {swept:.1f}s "
        f"({done.batches} batches); {len(claims)} claims meanwhile, slowest "
        f"{max(claims) * 1000:.0f} ms"
    )
    assert done.deleted_work_orders == SHARES[40]
    assert done.deleted_dataclips == SHARES[40]
    assert done.wiped_dataclips == SHARES[10]
    assert done.batches >= SHARES[40] // 1000
    assert after["work_orders"] == before["work_orders"] - SHARES[40] + len(claims)
    assert after["runs"] == before["runs"] - SHARES[40] + len(claims)
    assert after["bodies"] == before["bodies"] - SHARES[40] - SHARES[10] + 0
    # The queue went on during the sweep: claims were answered between its batches, not after
    # it (how long each waited is bench material, printed above, not asserted here).
    assert len(claims) > 1
