"""A clock the test moves by hand (STYLE.md P12): sleepers wake only when it is advanced."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, float, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=max(0.0, seconds)), seconds, future)
        self._sleepers.append(entry)
        self._changed.set()
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def set(self, moment: datetime) -> None:
        self._now = moment
        for deadline, _, future in self._sleepers:
            if deadline <= moment and not future.done():
                future.set_result(None)

    async def sleeper(self, seconds: float) -> None:
        """Wait until something sleeps for exactly ``seconds`` (e.g. a restart's backoff)."""
        while not any(s == seconds and not f.done() for _, s, f in self._sleepers):
            self._changed.clear()
            await self._changed.wait()
