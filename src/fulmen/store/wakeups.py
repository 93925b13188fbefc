"""Wake-up hints between coordinators that share a PostgreSQL store: LISTEN/NOTIFY.

A coordinator that enqueued runs sends ``NOTIFY fulmen_work``; every coordinator listening
pushes ``work-available`` to its workers. This is a hint only (notes/stack-research.md §1.5:
NOTIFY serialises commits under load and does not cross a transaction-pooling pgbouncer), so
coordinators also poll the queue. On SQLite there is one coordinator per file and nothing to
tell: :class:`NoWakeups` listens forever and sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final, Protocol

import psycopg

from fulmen.errors import StoreError

__all__ = ["CHANNEL", "NoWakeups", "PostgresWakeups", "Wakeups", "open_wakeups"]

CHANNEL: Final = "fulmen_work"
log = logging.getLogger(__name__)


class Wakeups(Protocol):
    async def notify(self) -> None:
        """Tell the other coordinators that work was enqueued (never raises)."""
        ...

    def listen(self) -> AsyncIterator[None]:
        """Yields once per hint received; runs until cancelled."""
        ...

    async def close(self) -> None: ...


class NoWakeups:
    async def notify(self) -> None:
        return None

    async def listen(self) -> AsyncIterator[None]:
        await asyncio.Event().wait()
        yield  # pragma: no cover - never reached

    async def close(self) -> None:
        return None


class PostgresWakeups:
    """One connection that sends, one that listens (reconnecting after a failure)."""

    def __init__(self, url: str, *, retry_delay: float = 1.0) -> None:
        self._url = url
        self._retry_delay = retry_delay
        self._sender: psycopg.AsyncConnection[object] | None = None
        self._lock = asyncio.Lock()

    async def notify(self) -> None:
        try:
            async with self._lock:
                if self._sender is None or self._sender.closed:
                    self._sender = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                await self._sender.execute(f"NOTIFY {CHANNEL}")
        except psycopg.Error as error:
            log.warning("could not send a wake-up to other coordinators: %s", error)

    async def listen(self) -> AsyncIterator[None]:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        yield
            except psycopg.Error as error:
                log.warning("wake-up listener lost its connection: %s; reconnecting", error)
                await asyncio.sleep(self._retry_delay)

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()


def open_wakeups(url: str) -> Wakeups:
    """Wake-ups for the store at ``url``: LISTEN/NOTIFY on PostgreSQL, none on SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresWakeups(url)
    if url.startswith("sqlite:///"):
        return NoWakeups()
    raise StoreError("wake-ups need a sqlite:/// or postgresql:// store URL")
