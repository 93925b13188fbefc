"""The seam between the store's logic and a SQL dialect.

The store's operations (catalog.py, queue.py, events.py, reads.py) are written once, against
``Database`` and ``Tx``; sqlite.py and postgres.py implement them. A ``Tx`` runs *named*
queries (queries.py), so no SQL text lives in Python, and adapts parameter values to its
driver: times, enums, lists. Rows come back as mappings keyed by column name; JSON columns come
back as text on both dialects and are decoded here, with ``loads``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import orjson

from fulmen.errors import InputError

__all__ = [
    "Database",
    "Params",
    "Row",
    "Tx",
    "Unit",
    "dumps",
    "from_micros",
    "held_by_this_task",
    "loads",
    "loads_or_none",
    "text",
    "time_or_none",
    "to_micros",
]

#: A result row. ``Any`` stays inside the store: every value is converted to a typed model
#: before it leaves.
Row: TypeAlias = Mapping[str, Any]
Params: TypeAlias = Mapping[str, object]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A \\u0000 escape in JSON text (an odd run of backslashes before u0000).
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_MICROSECOND = timedelta(microseconds=1)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Unit(Generic[T]):
    """A ``Database.together()`` block as a dialect keeps it in a context variable: the task
    it belongs to (a task started in the block inherits the variable but is not part of it)
    and what the dialect holds for it."""

    task: asyncio.Task[Any] | None
    held: T

    @classmethod
    def open(cls, held: T) -> Unit[T]:
        return cls(asyncio.current_task(), held)


def held_by_this_task(var: ContextVar[Unit[T] | None]) -> T | None:
    """What the current task's ``together()`` block holds, if the task is in one."""
    unit = var.get()
    return unit.held if unit is not None and unit.task is asyncio.current_task() else None


class Tx(Protocol):
    """One transaction. Every method takes the name of a query of the dialect's file."""

    async def execute(self, query: str, params: Params | None = None) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def fetchone(self, query: str, params: Params | None = None) -> Row | None: ...

    async def fetchall(self, query: str, params: Params | None = None) -> list[Row]: ...

    async def fetch_each(self, query: str, params: Sequence[Params]) -> list[Row]:
        """Run ``query`` once for each set of ``params``, in order; the row each returned
        (an ``INSERT … RETURNING``). PostgreSQL gets them all in one round trip: a frame of
        a worker's log lines is one statement per line."""
        ...

    async def execute_each(self, query: str, params: Sequence[Params]) -> None:
        """Run ``query`` once for each set of ``params``, in order, with nothing read back:
        :meth:`fetch_each` for rows whose ids nobody asks for (the lines of a frame of
        reports), without building a row for each."""
        ...

    def time(self, value: object) -> datetime:
        """A timestamp column's value as an aware UTC datetime."""
        ...


class Database(Protocol):
    dialect: str

    def write(self) -> AbstractAsyncContextManager[Tx]:
        """A transaction that may write. Committed when the block ends, rolled back when it
        raises; driver errors leave it as ConflictError (a constraint refused the write) or
        StoreError. On SQLite it holds the database's write lock from the start."""
        ...

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """A read-only transaction: its statements see one consistent state."""
        ...

    def together(self) -> AbstractAsyncContextManager[None]:
        """Make the :meth:`write` transactions of this block (in this task) one unit, durable
        once the block has returned: one commit instead of one each.

        Each write still runs in a savepoint of its own, so one that raises is rolled back
        alone and the others stand. Nothing may be acknowledged before the block returns;
        if the commit fails, the block raises StoreError and none of its writes happened.
        Reads in the block see what was committed before it, and may or may not see the
        block's own writes (PostgreSQL reads on the block's connection, SQLite on its reader):
        do not depend on either. A block inside another is
        part of the outer one. A block that raises may or may not keep its writes (SQLite's
        group commits them with the rest): catch in it what is to be kept. A block must not
        wait for another task's write: on SQLite that write waits for a commit that waits for
        the block.
        """
        ...

    async def close(self) -> None: ...


def utf8_size(text: str) -> int:
    """The bytes of ``text`` in UTF-8, which the bounded batches sum (batches.py); ASCII, as
    JSON and log lines mostly are, without encoding it."""
    return len(text) if text.isascii() else len(text.encode())


def dumps(value: object) -> str:
    """JSON text for a JSON column.

    Raises:
        InputError: not JSON, or a string in it holds the NUL character: PostgreSQL's jsonb
            cannot store that, so neither dialect accepts it (both must store the same).
    """
    try:
        encoded = orjson.dumps(value).decode()
    except TypeError as error:
        raise InputError(f"not a JSON document: {error}") from error
    if _JSON_NUL.search(encoded):
        raise InputError("a JSON document to store holds the NUL character (\\u0000)")
    return encoded


def text(value: str) -> str:
    """A text value as both dialects store it: without NUL characters, which PostgreSQL's
    text cannot hold (Lightning drops them from log lines too, spec §8.4)."""
    return value.replace("\x00", "") if "\x00" in value else value


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def loads_or_none(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def to_micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch (SQLite's time columns)."""
    if moment.tzinfo is None:
        raise InputError(f"timestamps must carry a time zone, got {moment.isoformat()}")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def time_or_none(tx: Tx, value: object) -> datetime | None:
    return None if value is None else tx.time(value)
