"""The SQLite dialect: one file in WAL mode, one writer connection and one reader.

SQLite allows one writer at a time per file. Inside a process, writes are queued on an asyncio
lock around the writer connection; across processes (or several stores opened on one file),
``BEGIN IMMEDIATE`` takes the file's write lock at the start of each write transaction and
``busy_timeout`` makes the others wait for it rather than fail. A transaction that reads and
then writes can therefore never see a row change under it, which is what makes the claim and
every state transition safe without ``SELECT … FOR UPDATE``.

The reader connection serves reads without waiting for writes (WAL keeps a snapshot per read
transaction). Both connections turn foreign keys on: SQLite leaves them off by default.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, cast

import aiosqlite

from fulmen.errors import ConflictError, StoreError
from fulmen.store.db import Params, Row, Tx, dumps, from_micros, text, to_micros
from fulmen.store.queries import Query, load_queries, load_schema

__all__ = ["SQLiteDatabase"]

#: How long a writer waits for another connection's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000


class _SQLiteTx:
    def __init__(self, conn: aiosqlite.Connection, queries: dict[str, Query]) -> None:
        self._conn = conn
        self._queries = queries

    async def execute(self, query: str, params: Params | None = None) -> int:
        cursor = await self._conn.execute(self._queries[query].sql, _adapt(params))
        count = cursor.rowcount
        await cursor.close()
        return count

    async def fetchone(self, query: str, params: Params | None = None) -> Row | None:
        rows = await self.fetchall(query, params)
        return rows[0] if rows else None

    async def fetchall(self, query: str, params: Params | None = None) -> list[Row]:
        # One trip to the connection's thread (execute, fetch and close happen there) instead
        # of three. Each trip is a thread hand-off and an event-loop wake-up, the largest CPU
        # cost of the coordinator's run events in a profile (bench/e2e.py), and a write
        # transaction holds the write lock across all of its trips.
        rows = await self._conn.execute_fetchall(self._queries[query].sql, _adapt(params))
        # _dict_row made them dicts; aiosqlite's annotations say sqlite3.Row.
        return [cast(dict[str, Any], row) for row in rows]

    def time(self, value: object) -> datetime:
        if not isinstance(value, int):
            raise StoreError(f"expected a time in microseconds, found {value!r}")
        return from_micros(value)


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._queries = load_queries(self.dialect)
        self._write_lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        """Open (creating it if needed) the database file and bring its schema up to date."""
        path.parent.mkdir(parents=True, exist_ok=True)
        async with _opening(path):
            writer = await _connect(path)
            try:
                # WAL lets the reader read while the writer writes; it is a property of the
                # file, so setting it once is enough.
                await writer.execute("PRAGMA journal_mode = WAL")
                # synchronous stays FULL (the default): a run whose enqueue was acknowledged
                # to a webhook caller survives a power cut, not only a crash of the process.
                await _migrate(writer)
                reader = await _connect(path, query_only=True)
            except BaseException:
                await writer.close()
                raise
        return cls(writer, reader)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self._write_lock, _translated():
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._writer, self._queries)
            except BaseException:
                await self._writer.rollback()
                raise
            await self._writer.commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self._read_lock, _translated():
            await self._reader.execute("BEGIN")
            try:
                yield _SQLiteTx(self._reader, self._queries)
            finally:
                await self._reader.rollback()

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()


@asynccontextmanager
async def _opening(path: Path) -> AsyncIterator[None]:
    """Hold ``<file>.lock`` (an flock) while opening: stores open one at a time.

    Switching a new file to WAL takes a lock that SQLite does not wait for (busy_timeout does
    not apply: "database is locked" at once), so two coordinators, or two stores of one test,
    opening a new file together could fail. Once open, they need no such lock. The lock is on
    a file of its own: SQLite's POSIX locks on the database file would be lost if we opened
    and closed that file here.
    """
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


async def _connect(path: Path, *, query_only: bool = False) -> aiosqlite.Connection:
    # isolation_level=None: the driver opens no transactions of its own; we say BEGIN.
    conn = await aiosqlite.connect(path, isolation_level=None)
    # aiosqlite annotates row_factory as a type; sqlite3 takes any callable.
    conn.row_factory = _dict_row  # type: ignore[assignment]
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        if query_only:
            await conn.execute("PRAGMA query_only = ON")
    except BaseException:
        # An unclosed aiosqlite connection keeps its thread, and so the process, alive.
        await conn.close()
        raise
    return conn


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Apply the schema files this database lacks, each with its schema_version row.

    Under BEGIN IMMEDIATE, so two processes opening a new file at once apply them once.
    """
    async with _translated():
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            cursor = await conn.execute(
                "SELECT coalesce(max(version), 0) AS version FROM schema_version"
            )
            row = await cursor.fetchone()
            current = int(row["version"]) if row else 0
            for version, name, script in load_schema("sqlite"):
                if version <= current:
                    continue
                for statement in _statements(script):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at)"
                    " VALUES (?, ?, datetime('now'))",
                    (version, name),
                )
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


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


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Driver errors become Fulmen's: a refused constraint is a conflict, the rest a failure."""
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise ConflictError(f"the store refused the write: {error}") from error
    except sqlite3.OperationalError as error:
        raise StoreError(f"the SQLite database failed: {error}") from error
    except sqlite3.Error as error:
        raise StoreError(f"the SQLite database failed: {error}") from error


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    """Rows as dicts, as psycopg's dict_row gives them."""
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


def _adapt(params: Params | None) -> dict[str, object]:
    return {key: _value(value) for key, value in (params or {}).items()}


def _value(value: object) -> object:
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
