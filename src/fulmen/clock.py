"""Where every service's time comes from: one clock type, injected so that tests can drive it
(STYLE.md P12).

The store stamps rows with :meth:`Clock.now`, the coordinator's reaper and cron scheduler and
the runner's scheduler and supervisor ask it the time, and the runner sleeps on it between
fires and restarts. A test passes a clock it moves by hand (``fulmen_testing.clock``); nothing
else in the process notices.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: the only place the services' time comes from outside."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Final = SystemClock()
