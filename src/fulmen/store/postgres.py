"""The PostgreSQL dialect: a psycopg 3 connection pool, for any number of coordinators.

Each transaction borrows a pooled connection. Rows read before a transition are locked
``FOR UPDATE`` (see postgres/queries.sql) and the claim and sweeps use ``SKIP LOCKED``, so
coordinators sharing a database neither double-claim nor wait on each other. JSON columns
(jsonb) are loaded as text, as SQLite gives them, so both dialects decode JSON in one place.
Schema migrations run under a transaction-scoped advisory lock: two coordinators starting at
once apply each schema file once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool

from fulmen.errors import ConflictError, StoreError
from fulmen.store.db import Params, Row, Tx, Unit, held_by_this_task, text
from fulmen.store.migrations import Applied, plan
from fulmen.store.queries import Query, load_queries, load_schema

__all__ = ["PostgresDatabase"]

#: pg_advisory_xact_lock key for migrations: "FULMEN" in ASCII.
MIGRATION_LOCK = 0x46554C4D454E

_Conn = psycopg.AsyncConnection[dict[str, Any]]


class _PostgresTx:
    def __init__(self, conn: _Conn, queries: dict[str, Query]) -> None:
        self._conn = conn
        self._queries = queries

    async def execute(self, query: str, params: Params | None = None) -> int:
        cursor = await self._conn.execute(self._queries[query].sql, _adapt(params))
        return cursor.rowcount

    async def fetchone(self, query: str, params: Params | None = None) -> Row | None:
        cursor = await self._conn.execute(self._queries[query].sql, _adapt(params))
        return await cursor.fetchone()

    async def fetchall(self, query: str, params: Params | None = None) -> list[Row]:
        cursor = await self._conn.execute(self._queries[query].sql, _adapt(params))
        return list(await cursor.fetchall())

    async def fetch_each(self, query: str, params: Sequence[Params]) -> list[Row]:
        rows: list[Row] = []
        async with self._conn.cursor() as cursor:
            await cursor.executemany(
                self._queries[query].sql, [_adapt(each) for each in params], returning=True
            )
            while True:  # one result per statement, in order
                rows.extend(await cursor.fetchall())
                if not cursor.nextset():
                    return rows

    async def execute_each(self, query: str, params: Sequence[Params]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(self._queries[query].sql, [_adapt(each) for each in params])

    def time(self, value: object) -> datetime:
        if not isinstance(value, datetime):
            raise StoreError(f"expected a timestamptz, found {value!r}")
        return value.astimezone(UTC)


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, pool: AsyncConnectionPool[_Conn]) -> None:
        self._pool = pool
        self._queries = load_queries(self.dialect)
        #: The connection of the current task's ``together()`` block, if it is in one.
        self._unit: ContextVar[Unit[_Conn] | None] = ContextVar(
            f"fulmen_postgres_unit_{id(self)}", default=None
        )

    @classmethod
    async def open(cls, url: str, *, max_connections: int = 10) -> PostgresDatabase:
        """Connect a pool to ``url`` and bring the schema up to date.

        Raises:
            StoreError: ``store_unreachable`` naming the server when no connection can be
                made (one try first: the pool would retry for seconds, logging each try).
        """
        await _reachable(url)
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            # Transactions are explicit (conn.transaction()), never implicit.
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=_configure,
            connection_class=psycopg.AsyncConnection[dict[str, Any]],
        )
        try:
            async with _translated():
                await pool.open(wait=True, timeout=10)
                async with pool.connection() as conn:
                    await _migrate(conn, _where(url))
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        unit = held_by_this_task(self._unit)
        if unit is not None:  # together(): a savepoint of the block's transaction
            async with _translated(), unit.transaction():
                yield _PostgresTx(unit, self._queries)
            return
        async with _translated(), self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn, self._queries)

    @asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        """``Database.together``: one pooled connection and one transaction for the block;
        each write is a savepoint of it. Its row locks are held until the block ends."""
        if held_by_this_task(self._unit) is not None:
            yield
            return
        async with _translated(), self._pool.connection() as conn, conn.transaction():
            token = self._unit.set(Unit.open(conn))
            try:
                yield
            finally:
                self._unit.reset(token)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        unit = held_by_this_task(self._unit)
        if unit is not None:
            # On the block's own connection: one from the pool could be the last, which the
            # blocks of other tasks, each waiting for a read, would be holding.
            async with _translated(), unit.transaction():
                yield _PostgresTx(unit, self._queries)
            return
        # REPEATABLE READ: the statements of one read see one snapshot (a run and its steps
        # as they were together).
        async with _translated(), self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _PostgresTx(conn, self._queries)

    async def close(self) -> None:
        await self._pool.close()


async def _configure(conn: _Conn) -> None:
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)


async def _migrate(conn: _Conn, where: str) -> None:
    """Apply the schema files this database lacks, after checking the ones applied
    (migrations.py)."""
    async with conn.transaction():
        # Held until this transaction ends: a second coordinator waits here, then finds the
        # versions applied. DDL is transactional in PostgreSQL, so a failed file leaves none
        # of its changes behind.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)"
        )
        # A database from before checksums were recorded.
        await conn.execute("ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS checksum text")
        cursor = await conn.execute(
            "SELECT version, name, checksum FROM schema_version ORDER BY version"
        )
        applied = [Applied(r["version"], r["name"], r["checksum"]) for r in await cursor.fetchall()]
        todo = plan(applied, load_schema("postgres"), where=where)
        for file in todo.record_checksums:
            await conn.execute(
                "UPDATE schema_version SET checksum = %s WHERE version = %s",
                (file.checksum, file.version),
            )
        for file in todo.apply:
            await conn.execute(file.script)
            await conn.execute(
                "INSERT INTO schema_version (version, name, checksum) VALUES (%s, %s, %s)",
                (file.version, file.name, file.checksum),
            )


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Driver errors become Fulmen's: a refused constraint is a conflict, the rest a failure."""
    try:
        yield
    except psycopg.errors.IntegrityError as error:
        raise ConflictError(f"the store refused the write: {_first_line(error)}") from error
    except (psycopg.Error, OSError) as error:
        raise StoreError(f"the PostgreSQL database failed: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _adapt(params: Params | None) -> dict[str, object]:
    return {key: _value(value) for key, value in (params or {}).items()}


def _value(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, tuple | set | frozenset):
        return [_value(item) for item in value]
    if isinstance(value, list):
        return [_value(item) for item in value]
    return value


async def _reachable(url: str) -> None:
    try:
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
    except (psycopg.Error, OSError) as error:
        raise StoreError(
            f"cannot reach the PostgreSQL database {_where(url)}: {_first_line(error)}; is the "
            "server running, and is the database URL (FULMEN_DATABASE_URL) right?",
            code="store_unreachable",
        ) from error
    await probe.close()


def _where(url: str) -> str:
    """The database as an error may name it: host, port and name, never the password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('host', '?')}:{info.get('port', 5432)}/{info.get('dbname', '?')}"
