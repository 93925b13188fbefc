"""Issue 14: a frame of log lines sent again after its reply was lost is stored once, on
both backends, whichever store (coordinator) it reaches, and on a database that held logs
before the log heads existed (schema 0005)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import psycopg
import pytest

from fulmen.errors import NotFoundError
from fulmen.store import LogLine, SQLStore, StepStart, open_store, sqlite_path
from fulmen.store import postgres as postgres_dialect
from fulmen.store import sqlite as sqlite_dialect
from fulmen_testing.clock import FakeClock

from .conftest import Backend
from .test_store import log, seed, started_run

pytestmark = pytest.mark.anyio


async def messages(store: SQLStore, run_id: str) -> list[str]:
    return [entry.message for entry in (await store.get_logs(run_id, limit=1000)).items]


async def test_a_frame_sent_again_is_stored_once(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    run_id = await started_run(store)
    await store.start_step(run_id, StepStart("s1", "j1"))
    # The same line twice in one frame (one microsecond) is two lines, not a copy.
    first = [log("a", clock, step_id="s1"), log("a", clock, step_id="s1"), log("b", clock)]
    ids = await store.append_logs(run_id, first, once=True)
    assert len(set(ids)) == 3
    assert await store.append_logs(run_id, first, once=True) == ids  # sent again

    clock.advance(milliseconds=1)
    [single] = await store.append_logs(run_id, [log("c", clock)], once=True)
    assert await store.append_logs(run_id, [log("c", clock)], once=True) == [single]
    assert await messages(store, run_id) == ["a", "a", "b", "c"]

    # Only the run's last frame can be a copy: a worker sends the next one after the reply.
    # The first frame again, after another, is new lines (as a plain append always is).
    assert await store.append_logs(run_id, first, once=True) != ids
    await store.append_logs(run_id, [log("d", clock)])
    await store.append_logs(run_id, [log("d", clock)])
    assert await messages(store, run_id) == ["a", "a", "b", "a", "a", "b", "c", "d", "d"]
    with pytest.raises(NotFoundError):
        await store.append_logs("no-such-run", first, once=True)
    # A refused frame changes nothing, the run's log head included.
    [e] = await store.append_logs(run_id, [log("e", clock)], once=True)
    with pytest.raises(NotFoundError):
        await store.append_logs(run_id, [log("f", clock), log("g", clock, step_id="no")], once=True)
    assert await store.append_logs(run_id, [log("e", clock)], once=True) == [e]
    assert (await messages(store, run_id))[-2:] == ["d", "e"]


async def test_frames_are_told_apart_by_every_field(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    run_id = await started_run(store)
    await store.start_step(run_id, StepStart("s1", "j1"))
    base = log("x", clock)
    variants = [
        base,
        LogLine("x", clock.now() + timedelta(microseconds=1)),
        LogLine("x", clock.now(), source="R/T"),
        LogLine("x", clock.now(), level="error"),
        LogLine("x", clock.now(), step_id="s1"),
        LogLine("y", clock.now()),
    ]
    for line in variants:
        await store.append_logs(run_id, [line], once=True)
    await store.append_logs(run_id, [base, base], once=True)  # a frame of two is another
    assert len(await messages(store, run_id)) == len(variants) + 2


async def test_a_frame_handled_by_two_coordinators_at_once_is_stored_once(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """The worker sent a frame to coordinator A, lost the connection before the reply, and
    sent it again to coordinator B while A's transaction was still open. On PostgreSQL both
    are held at the run's log head until a third connection lets go, so both handle the
    frame at the same time; on SQLite the file's write lock takes them in turn."""
    await seed(store)
    run_id = await started_run(store)
    await store.append_logs(run_id, [log("before", clock)], once=True)
    frame = [log("sent twice", clock), log("and again", clock)]
    async with (
        await open_store(backend.url, clock=clock) as store_a,
        await open_store(backend.url, clock=clock) as store_b,
    ):
        if backend.conninfo is None:
            got = await asyncio.gather(
                store_a.append_logs(run_id, frame, once=True),
                store_b.append_logs(run_id, frame, once=True),
            )
        else:
            async with await psycopg.AsyncConnection.connect(backend.conninfo) as holder:
                await holder.execute(
                    "SELECT run_id FROM log_heads WHERE run_id = %s FOR UPDATE", (run_id,)
                )
                both = asyncio.gather(
                    store_a.append_logs(run_id, frame, once=True),
                    store_b.append_logs(run_id, frame, once=True),
                )
                await until_waiting(backend, 2)
                await holder.rollback()
                got = await asyncio.wait_for(both, 10)
    assert got[0] == got[1]
    assert await messages(store, run_id) == ["before", "sent twice", "and again"]


async def until_waiting(backend: Backend, count: int) -> None:
    """Until ``count`` sessions of the test's database wait for a lock."""
    assert backend.conninfo is not None
    async with await psycopg.AsyncConnection.connect(backend.conninfo, autocommit=True) as pg:
        for _ in range(500):
            cursor = await pg.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.02)  # polling the server's view of its sessions
    raise AssertionError(f"{count} appends never waited at the log head")


# -- a database from before schema 0005 ----------------------------------------------------

#: Rows for one started run with two log lines, in the schema of files 0001-0004 (which never
#: change once released), as a Fulmen of that time would have left them.
_OLD_ROWS = (
    "INSERT INTO projects (id, name, inserted_at, updated_at) VALUES ('p', 'old', {t}, {t})",
    "INSERT INTO workflows (id, project_id, name, lock_version, inserted_at, updated_at)"
    " VALUES ('w', 'p', 'old', 1, {t}, {t})",
    "INSERT INTO workflow_snapshots (id, workflow_id, version, document, inserted_at)"
    " VALUES ('ws', 'w', 1, '{{}}', {t})",
    "INSERT INTO work_orders (id, workflow_id, inserted_at) VALUES ('wo', 'w', {t})",
    "INSERT INTO runs (id, work_order_id, workflow_id, project_id, snapshot_id,"
    " starting_node_id, state, queue, priority, options, inserted_at, claimed_at, started_at)"
    " VALUES ('r', 'wo', 'w', 'p', 'ws', 't', 'started', 'default', 0, '{{}}', {t}, {t}, {t})",
    "INSERT INTO log_lines (run_id, source, level, message, logged_at)"
    " VALUES ('r', 'JOB', 'info', 'old one', {t}), ('r', 'JOB', 'info', 'old two', {t})",
)


async def test_a_database_with_logs_from_before_log_heads_keeps_them(
    backend: Backend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 0005 only adds a table: a run with lines and no log head reads as before, and
    its next frames are stored once each."""
    dialect = sqlite_dialect if backend.conninfo is None else postgres_dialect
    files = dialect.load_schema(backend.name)
    with monkeypatch.context() as patch:
        patch.setattr(dialect, "load_schema", lambda *a, **k: files[:4])
        async with await open_store(backend.url, clock=clock):
            pass  # a database made by a Fulmen without schema 0005
    if backend.conninfo is None:
        with sqlite3.connect(sqlite_path(backend.url)) as conn:
            micros = int(clock.now().timestamp() * 1_000_000)
            for statement in _OLD_ROWS:
                conn.execute(statement.format(t=micros))
    else:
        with psycopg.connect(backend.conninfo) as pg:
            for statement in _OLD_ROWS:
                pg.execute(statement.format(t=f"'{clock.now().isoformat()}'"))

    async with await open_store(backend.url, clock=clock) as store:
        assert await messages(store, "r") == ["old one", "old two"]
        clock.advance(seconds=1)
        frame = [log("new", clock)]
        ids = await store.append_logs("r", frame, once=True)
        assert await store.append_logs("r", frame, once=True) == ids
        assert await messages(store, "r") == ["old one", "old two", "new"]
