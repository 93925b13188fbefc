"""Wake-up hints between coordinators that share a PostgreSQL store: LISTEN/NOTIFY.

A coordinator that enqueued runs sends ``NOTIFY fulmen_work``; every coordinator listening
pushes ``work-available`` to its workers. The dashboard's change feed has a channel of its own
(``fulmen_changes``, coordinator/changes.py), whose hints carry a short payload (which runs).
These are hints only (notes/stack-research.md §1.5: NOTIFY serialises commits under load and
does not cross a transaction-pooling pgbouncer), so coordinators also poll the queue, and
pages re-read now and then. On SQLite there is one coordinator per file and nothing to tell:
:class:`NoWakeups` listens forever and sends nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final, Protocol

import psycopg

from fulmen.errors import StoreError

__all__ = ["CHANGES", "CHANNEL", "NoWakeups", "PostgresWakeups", "Wakeups", "open_wakeups"]

CHANNEL: Final = "fulmen_work"
#: The dashboard's change feed between coordinators.
CHANGES: Final = "fulmen_changes"
log = logging.getLogger(__name__)


class Wakeups(Protocol):
    async def notify(self, payload: str = "") -> None:
        """Tell the other coordinators (never raises); ``payload`` at most a few KB."""
        ...

    def listen(self) -> AsyncIterator[str]:
        """Yields each hint's payload as it is received; runs until cancelled."""
        ...

    async def close(self) -> None: ...


class NoWakeups:
    async def notify(self, payload: str = "") -> None:
        return None

    async def listen(self) -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield ""  # pragma: no cover - never reached

    async def close(self) -> None:
        return None


class PostgresWakeups:
    """One connection that sends, one that listens (reconnecting after a failure)."""

    def __init__(self, url: str, *, channel: str = CHANNEL, retry_delay: float = 1.0) -> None:
        self._url = url
        self._channel = channel
        self._retry_delay = retry_delay
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._lock = asyncio.Lock()

    async def notify(self, payload: str = "") -> None:
        try:
            async with self._lock:
                if self._sender is None or self._sender.closed:
                    self._sender = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                if payload:
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (self._channel, payload))
                else:
                    await self._sender.execute(f"NOTIFY {self._channel}")
        except psycopg.Error as error:
            log.warning("could not send a wake-up to other coordinators: %s", error)

    async def listen(self) -> AsyncIterator[str]:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    async for note in conn.notifies():
                        yield note.payload
            except psycopg.Error as error:
                log.warning("wake-up listener lost its connection: %s; reconnecting", error)
                await asyncio.sleep(self._retry_delay)

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()


def open_wakeups(url: str, channel: str = CHANNEL) -> Wakeups:
    """Wake-ups on ``channel`` for the store at ``url``: LISTEN/NOTIFY on PostgreSQL, none on
    SQLite (one coordinator per file)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresWakeups(url, channel=channel)
    if url.startswith("sqlite:///"):
        return NoWakeups()
    raise StoreError("wake-ups need a sqlite:/// or postgresql:// store URL")
