"""The one fake clock (fulmen.clock.Clock): time moves only when a test says so, and sleepers
wake only when it is moved past their deadline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        self._sleepers: list[tuple[datetime, float, asyncio.Future[None]]] = []
        self._changed: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=max(0.0, seconds)), seconds, future)
        self._sleepers.append(entry)
        self._event().set()
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move time on by ``seconds`` and/or ``timedelta`` keywords; the new time."""
        self.set(self._now + timedelta(seconds=seconds, **delta))
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment
        for deadline, _, future in self._sleepers:
            if deadline <= moment and not future.done():
                future.set_result(None)

    async def sleeper(self, seconds: float) -> None:
        """Wait until something sleeps for exactly ``seconds`` (e.g. a restart's backoff)."""
        changed = self._event()
        while not any(s == seconds and not f.done() for _, s, f in self._sleepers):
            changed.clear()
            await changed.wait()

    def _event(self) -> asyncio.Event:
        if self._changed is None:  # made in the loop that first needs it
            self._changed = asyncio.Event()
        return self._changed
