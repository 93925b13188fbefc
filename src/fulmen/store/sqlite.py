"""The SQLite dialect: one file in WAL mode, one writer connection and one reader, driven
from the event loop's own thread, with group commit.

*Why statements run on the loop's thread.* The coordinator's statements are index lookups
and single-row writes on a local file in the page cache: a few microseconds each. Handing
each one to a driver thread (as aiosqlite does) cost more than the statement itself: a
queue hand-off, a thread switch, and a wake-up of the loop through its self-pipe, ~50 of
them per run, which was most of the coordinator's CPU per run in bench/e2e.py. What can make
SQLite wait is taken off the loop: taking the file's write lock when another process holds
it (``BEGIN IMMEDIATE`` is tried at once, and only if the lock is busy retried in a thread
with ``busy_timeout``) and the ``fsync`` of ``COMMIT`` (in a thread, unless the group wrote
nothing).

*Group commit.* ``synchronous`` stays FULL (the default): a run whose enqueue was
acknowledged to a webhook caller survives a power cut, not only a crash of the process. An
fsync per transaction would then put a ceiling of a few hundred transactions a second on the
whole coordinator, and ~10 of them make one run. So write transactions that arrive while
another is open join it: each runs inside a savepoint of one SQLite transaction (an error
rolls back its own savepoint only), and one ``COMMIT`` makes the group durable. No caller
leaves :meth:`SQLiteDatabase.write` before the commit that holds its changes has returned;
if that commit fails, every transaction of the group fails with it, and none was
acknowledged. The committer queues on the write lock behind the writers already waiting, so
a group is "everyone who was waiting when the previous commit started". A ``together()``
block (several reports of one run in one frame) puts all its writes in one group: no group
commits while a block is open, and the block returns once its group has.

*Isolation.* Inside a process, writes take turns on an asyncio lock around the writer
connection; across processes, ``BEGIN IMMEDIATE`` takes the file's write lock at the start
of each group, so a transaction that reads and then writes never sees a row change under
it, which is what makes the claim and every state transition safe without
``SELECT … FOR UPDATE``. Reads use the reader connection, which sees only committed data
(WAL keeps a snapshot per read transaction), never a group that may yet fail to commit.
Both connections turn foreign keys on: SQLite leaves them off by default.

*Erasing.* A wiped or deleted body must not outlive its wipe anywhere on the disk (a
project's ``erase_all`` mode promises that no input or output outlives its run). Three places
would keep it: the free space SQLite leaves in pages and in its free list (``secure_delete``,
on for the writer, overwrites it with zeros); the WAL, which holds every page image written
since its last checkpoint, the ones from before the wipe included; and the statement
journal, where a savepoint keeps the former content of the pages it changes (the zeroed
ones too), which SQLite spills past 64 KiB to a temporary file that it unlinks at once, so
that its blocks, never overwritten, keep the body in the disk's free space. So a group whose
statements erased rows (the queries in :data:`ERASING`) is followed, before its writers are
answered, by ``wal_checkpoint(TRUNCATE)``: the pages as they are now go to the database file
and the WAL is emptied. That checkpoint waits for readers of the old pages; if another
process keeps one reading past the busy timeout, the log says that the wiped bodies stay in
the WAL until a later checkpoint. And both connections keep their temporary data in memory
(``temp_store = MEMORY``), which bounds how much a transaction may erase: bulk deletions go
in batches (batches.py).

*Files.* The database's directory is made 0700 and its file 0600 whatever the umask, so the
``-wal`` and ``-shm`` files SQLite makes beside it are 0600 too (files.py); looser ones that
already exist are reported when the store opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Final, cast

from fulmen.errors import ConflictError, StoreError
from fulmen.store.db import (
    Params,
    Row,
    Tx,
    Unit,
    dumps,
    from_micros,
    held_by_this_task,
    text,
    to_micros,
)
from fulmen.store.files import open_private, private_dir, warn_if_loose
from fulmen.store.migrations import Applied, plan
from fulmen.store.queries import STORE_SQL, Query, load_queries, load_schema

__all__ = ["ERASING", "SQLiteDatabase", "add_column_to_unversioned"]

log = logging.getLogger(__name__)

#: How long a writer waits for another connection's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000
#: The files SQLite and this module keep beside the database file.
_BESIDE = ("-wal", "-shm", ".lock")
#: The savepoint each write transaction of a group runs in.
_SAVEPOINT = "fulmen_tx"
#: Queries that erase dataclip bodies (retention, ``erase_all``, deleting a project): a group
#: in which one of them changed a row ends with a checkpoint that empties the WAL.
ERASING = frozenset(
    {
        "wipe_dataclip",
        "wipe_unused_dataclip",
        "wipe_old_dataclips",
        "delete_old_dataclips",
        "delete_old_work_orders",
        "delete_project_work_orders",
        "delete_project_dataclips",
        "delete_project",
        "delete_workflow_work_orders",
        "delete_workflow",
    }
)


class _SQLiteTx:
    """Statements of one transaction, run synchronously (see the module's docstring); the
    methods are coroutines only to meet the ``Tx`` protocol PostgreSQL needs. ``erased`` is
    called when an :data:`ERASING` query changed rows (erasing queries return no rows, so
    that :meth:`execute` sees them)."""

    __slots__ = ("_conn", "_erased", "_queries")

    def __init__(
        self,
        conn: sqlite3.Connection,
        queries: dict[str, Query],
        erased: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._queries = queries
        self._erased = erased

    async def execute(self, query: str, params: Params | None = None) -> int:
        cursor = self._conn.execute(self._queries[query].sql, _adapt(params))
        count = cursor.rowcount
        cursor.close()
        self._changed(query, count)
        return count

    async def fetchone(self, query: str, params: Params | None = None) -> Row | None:
        cursor = self._conn.execute(self._queries[query].sql, _adapt(params))
        row: Row | None = cursor.fetchone()
        cursor.close()
        return row

    async def fetchall(self, query: str, params: Params | None = None) -> list[Row]:
        rows: list[Row] = self._conn.execute(self._queries[query].sql, _adapt(params)).fetchall()
        return rows

    async def fetch_each(self, query: str, params: Sequence[Params]) -> list[Row]:
        sql = self._queries[query].sql
        rows: list[Row] = []
        for each in params:
            cursor = self._conn.execute(sql, _adapt(each))
            rows.append(cursor.fetchone())
            cursor.close()  # as fetchone does: the statement ends now, not when collected
        return rows

    async def execute_each(self, query: str, params: Sequence[Params]) -> None:
        cursor = self._conn.executemany(self._queries[query].sql, [_adapt(p) for p in params])
        count = cursor.rowcount
        cursor.close()
        self._changed(query, count)

    def _changed(self, query: str, count: int) -> None:
        if count > 0 and query in ERASING and self._erased is not None:
            self._erased()

    def time(self, value: object) -> datetime:
        if not isinstance(value, int):
            raise StoreError(f"expected a time in microseconds, found {value!r}")
        return from_micros(value)


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(
        self, writer: sqlite3.Connection, reader: sqlite3.Connection, *, package: str = STORE_SQL
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._queries = load_queries(self.dialect, package=package)
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        #: The open group's outcome, or ``None`` when no SQLite transaction is open.
        self._group: asyncio.Future[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._changes_at_begin = 0
        #: The open group erased rows: its commit is followed by a checkpoint.
        self._erased = False
        self._closed = False
        #: The groups written in by the current task's ``together()`` block, if it is in one.
        self._unit: ContextVar[Unit[list[asyncio.Future[None]]] | None] = ContextVar(
            f"fulmen_sqlite_unit_{id(self)}", default=None
        )
        #: ``together()`` blocks not yet ended: no group commits while one is open.
        self._units_open = 0
        self._no_units = asyncio.Event()
        self._no_units.set()

    @classmethod
    async def open(cls, path: Path, *, package: str = STORE_SQL) -> SQLiteDatabase:
        """Open (creating it if needed) the database file and bring its schema up to date.

        ``package`` holds the SQL (``sql/sqlite/``): the coordinator's store by default.
        """
        private_dir(path.parent)
        async with _opening(path):
            os.close(open_private(path))  # 0600 before SQLite sees it: see files.py
            writer, reader = await asyncio.to_thread(_open_connections, path, package)
        files = [path.parent, path, *(path.with_name(path.name + end) for end in _BESIDE)]
        warn_if_loose(f"the SQLite store {path}", files)
        return cls(writer, reader, package=package)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            if self._closed:
                raise StoreError("the SQLite store is closed")
            if self._group is None:
                await self._begin()
                self._group = asyncio.get_running_loop().create_future()
                self._changes_at_begin = self._writer.total_changes
            group = self._group
            with _translated():
                self._writer.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                yield _SQLiteTx(self._writer, self._queries, self._mark_erased)
            except BaseException as error:
                self._commit_soon()
                with _translated():
                    self._writer.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    self._writer.execute(f"RELEASE {_SAVEPOINT}")
                if isinstance(error, sqlite3.Error):
                    raise _store_error(error) from error
                raise
            with _translated():
                self._writer.execute(f"RELEASE {_SAVEPOINT}")
            self._commit_soon()
        unit = held_by_this_task(self._unit)
        if unit is not None:  # together(): its block waits for the commit, once
            unit.append(group)
            return
        # Outside the lock, so that the next writers can join the group meanwhile; shielded,
        # so that a caller cancelled here does not cancel the commit of the others.
        await asyncio.shield(group)

    @asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        """``Database.together``: the block's writes return without waiting for their
        group's commit, which waits for every open block to end (``_commit``), so they all
        go in one group; the block then waits for that commit."""
        if held_by_this_task(self._unit) is not None:
            yield
            return
        groups: list[asyncio.Future[None]] = []
        token = self._unit.set(Unit.open(groups))
        self._units_open += 1
        self._no_units.clear()
        try:
            yield
        finally:
            self._unit.reset(token)
            self._units_open -= 1
            if not self._units_open:
                self._no_units.set()
        for group in dict.fromkeys(groups):
            await asyncio.shield(group)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self._read_lock:
            with _translated():
                self._reader.execute("BEGIN")
                try:
                    yield _SQLiteTx(self._reader, self._queries)
                finally:
                    self._reader.execute("ROLLBACK")

    async def close(self) -> None:
        async with self._write_lock:
            self._closed = True
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        self._reader.close()
        self._writer.close()

    def _mark_erased(self) -> None:
        self._erased = True

    # -- the group's begin and commit ----------------------------------------------------------

    async def _begin(self) -> None:
        """Take the file's write lock: at once if it is free, else wait for it in a thread."""
        try:
            self._writer.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise StoreError(f"the SQLite database failed: {error}") from error
        with _translated():
            await asyncio.to_thread(_begin_waiting, self._writer)

    def _commit_soon(self) -> None:
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit())

    async def _commit(self) -> None:
        """Commit the open group once the writers already waiting have joined it, and no
        ``together()`` block is still writing in it."""
        while True:
            await self._no_units.wait()
            async with self._write_lock:
                if not self._units_open:
                    await self._commit_group()
                    return

    async def _commit_group(self) -> None:
        """Commit the open group; the write lock is held."""
        group, self._group, self._committer = self._group, None, None
        erased, self._erased = self._erased, False
        if group is None:  # pragma: no cover - a group is open whenever this is scheduled
            return
        try:
            if self._writer.total_changes == self._changes_at_begin:
                # Nothing was written (a claim that found no run): nothing to sync, so
                # no reason to leave the loop's thread.
                self._writer.execute("COMMIT")
            else:
                await asyncio.to_thread(self._writer.execute, "COMMIT")
            if erased:
                await asyncio.to_thread(_empty_wal, self._writer)
        except BaseException as error:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            group.set_exception(_store_error(error))
            group.exception()  # retrieved: no warning when every writer was cancelled
            if not isinstance(error, Exception):
                raise
        else:
            group.set_result(None)


async def add_column_to_unversioned(path: Path, table: str, column: str, declaration: str) -> None:
    """Add ``column`` to ``table`` in a file made before its schema was versioned (it has the
    table but no ``schema_version``), when the table lacks it.

    Why: a first schema file written with ``CREATE TABLE IF NOT EXISTS`` adopts such a file's
    tables as they are, and SQLite has no ``ADD COLUMN IF NOT EXISTS`` for a column that only
    some of those files have. Nothing is done to a missing file, or to a versioned one.
    """
    if path.exists():
        await asyncio.to_thread(_add_column, path, table, column, declaration)


def _add_column(path: Path, table: str, column: str, declaration: str) -> None:
    with contextlib.closing(_connect(path)) as conn, _translated():
        tables = {row["name"] for row in conn.execute("SELECT name FROM sqlite_master")}
        if table not in tables or "schema_version" in tables:
            return
        columns = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _open_connections(path: Path, package: str) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    writer = _connect(path)
    try:
        # WAL lets the reader read while the writer writes; it is a property of the file,
        # so setting it once is enough.
        writer.execute("PRAGMA journal_mode = WAL")
        # Erased rows are overwritten with zeros, in their pages and in freed pages alike.
        writer.execute("PRAGMA secure_delete = ON")
        _migrate(writer, path, package)
        # The writer never waits on the loop's thread: a busy lock is waited for in a thread
        # (SQLiteDatabase._begin). The reader keeps the busy timeout: in WAL mode it waits
        # only in the rare moments another connection restarts the log.
        writer.execute("PRAGMA busy_timeout = 0")
        reader = _connect(path, query_only=True)
    except BaseException:
        writer.close()
        raise
    return writer, reader


def _empty_wal(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database file and truncate it to nothing (see *Erasing*),
    waiting up to the busy timeout for readers of older pages to finish."""
    # The group is committed by now: a failure here is reported, not the writers' failure.
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            row = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error as error:
        log.warning("could not empty the SQLite WAL after erasing rows: %s", error)
        return
    if row is not None and row["busy"]:
        log.warning(
            "could not empty the SQLite WAL after erasing rows (another connection kept "
            "reading): the erased data stays in it until a later checkpoint"
        )


def _begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return bool(error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY)


@asynccontextmanager
async def _opening(path: Path) -> AsyncIterator[None]:
    """Hold ``<file>.lock`` (an flock) while opening: stores open one at a time.

    Switching a new file to WAL takes a lock that SQLite does not wait for (busy_timeout does
    not apply: "database is locked" at once), so two coordinators, or two stores of one test,
    opening a new file together could fail. Once open, they need no such lock. The lock is on
    a file of its own: SQLite's POSIX locks on the database file would be lost if we opened
    and closed that file here.
    """
    fd = open_private(path.with_name(path.name + ".lock"))
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _connect(path: Path, *, query_only: bool = False) -> sqlite3.Connection:
    # isolation_level=None: the driver opens no transactions of its own; we say BEGIN.
    # check_same_thread=False: a connection is used from the loop's thread and, for a
    # commit or a busy lock, from one worker thread at a time (the write lock orders them).
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the SQLite database {path}: {error}") from error
    conn.row_factory = _dict_row
    try:
        with _translated():
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Statement journals, sorts and temporary tables in memory, never in a
            # temporary file (see *Erasing*).
            conn.execute("PRAGMA temp_store = MEMORY")
            if query_only:
                conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path, package: str) -> None:
    """Apply the schema files this database lacks, each with its schema_version row and
    checksum, after checking the ones applied (migrations.py).

    Under BEGIN IMMEDIATE, so two processes opening a new file at once apply them once.
    """
    with _translated():
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL,"
                " checksum TEXT)"
            )
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(schema_version)")}
            if "checksum" not in columns:  # a database from before checksums were recorded
                conn.execute("ALTER TABLE schema_version ADD COLUMN checksum TEXT")
            applied = [
                Applied(row["version"], row["name"], row["checksum"])
                for row in conn.execute(
                    "SELECT version, name, checksum FROM schema_version ORDER BY version"
                )
            ]
            todo = plan(applied, load_schema("sqlite", package=package), where=str(path))
            for file in todo.record_checksums:
                conn.execute(
                    "UPDATE schema_version SET checksum = ? WHERE version = ?",
                    (file.checksum, file.version),
                )
            for file in todo.apply:
                for statement in _statements(file.script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at, checksum)"
                    " VALUES (?, ?, datetime('now'), ?)",
                    (file.version, file.name, file.checksum),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> Iterable[str]:
    """Split a script into statements. (executescript would commit our transaction first.)"""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    rest = "".join(line for line in pending.splitlines() if not line.strip().startswith("--"))
    if rest.strip():
        raise StoreError(f"an SQL statement in the schema does not end: {rest.strip()[:80]}")


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors become Fulmen's: a refused constraint is a conflict, the rest a failure."""
    try:
        yield
    except sqlite3.Error as error:
        raise _store_error(error) from error


def _store_error(error: BaseException) -> BaseException:
    if isinstance(error, sqlite3.IntegrityError):
        return ConflictError(f"the store refused the write: {error}")
    if isinstance(error, sqlite3.Error):
        return StoreError(f"the SQLite database failed: {error}")
    return error


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as dicts, as psycopg's dict_row gives them."""
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


def _adapt(params: Params | None) -> dict[str, object]:
    return {key: _value(value) for key, value in (params or {}).items()}


#: Values SQLite takes as they are; checked by exact type first, since every parameter of
#: every statement passes here (about 130 per run).
_AS_THEY_ARE: Final = frozenset({int, float, bytes, type(None)})


def _value(value: object) -> object:
    kind = type(value)
    if kind is str:
        return text(cast(str, value))
    if kind in _AS_THEY_ARE:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | tuple | set | frozenset):
        return dumps([_value(item) for item in value])
    return value
