"""Cron timing for every scheduled worker: one loop, one clock (spec runner.md §3.4).

The scheduler only decides *when*; what a fire does is the callback's business (the service
starts ``tasks`` unless the previous run is still going, and records ``skipped-overlap`` if
it is). Two rules live here:

- **No backfill.** After a fire, the next one is the first fire time strictly after *now*,
  not after the fire time that was due: a runner that was stopped, suspended or stuck for an
  hour fires once when it wakes, never the sixty it slept through. (Fires missed while the
  runner was down are the service's to record, once, at start.)
- **Wall-clock minutes.** Fire times come from ``fulmen.cron`` in the worker's time zone;
  the loop sleeps until the earliest one, but never more than 60 s at a time, so that a
  jump of the system clock is noticed within a minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final

from fulmen import cron
from fulmen.clock import Clock

__all__ = ["MAX_SLEEP_S", "Scheduler"]

MAX_SLEEP_S: Final = 60.0

Fire = Callable[[str, datetime], None]
"""Called with the worker id and the fire time that came due; must not block."""


class Scheduler:
    """Fires each worker's schedule on ``clock``; run :meth:`run` as a task.

    *Resource handling*: owns nothing but its table; cancel the :meth:`run` task to stop it.
    """

    def __init__(self, clock: Clock, fire: Fire) -> None:
        self._clock = clock
        self._fire = fire
        self._entries: dict[str, tuple[datetime, cron.CronSpec]] = {}
        self._changed = asyncio.Event()

    def set(self, worker_id: str, spec: cron.CronSpec, after: datetime) -> datetime:
        """Schedule (or reschedule) a worker from ``after``; returns its next fire time."""
        when = cron.next_fire(spec, after)
        self._entries[worker_id] = (when, spec)
        self._changed.set()
        return when

    def remove(self, worker_id: str) -> None:
        if self._entries.pop(worker_id, None) is not None:
            self._changed.set()

    def next_run(self, worker_id: str) -> datetime | None:
        entry = self._entries.get(worker_id)
        return entry[0] if entry else None

    def take_due(self, now: datetime) -> list[tuple[str, datetime]]:
        """Every ``(worker, fire time)`` due at ``now``, each rescheduled after ``now``."""
        due = [(wid, when) for wid, (when, _) in self._entries.items() if when <= now]
        for worker_id, _ in due:
            spec = self._entries[worker_id][1]
            self._entries[worker_id] = (cron.next_fire(spec, now), spec)
        return sorted(due, key=lambda item: item[1])

    def delay(self, now: datetime) -> float:
        """How long to sleep before the next fire could be due."""
        if not self._entries:
            return MAX_SLEEP_S
        earliest = min(when for when, _ in self._entries.values())
        return min(MAX_SLEEP_S, max(0.0, (earliest - now).total_seconds()))

    async def run(self) -> None:
        """Fire what is due, sleep until the next, forever; wakes early on any change."""
        while True:
            now = self._clock.now()
            for worker_id, when in self.take_due(now):
                self._fire(worker_id, when)
            self._changed.clear()
            await self._sleep(self.delay(now))

    async def _sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
