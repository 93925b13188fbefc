"""The retention sweep (issue 8): each project's history and dataclip bodies kept no longer
than it says, once a day; and the idempotency keys past their window (issue 14) removed.

For every project with a retention setting (fulmen.store.retention_policy), the sweep runs
batches of at most ``retention_batch`` rows per kind, each its own short transaction, until a
batch finds less than a full batch to do; between batches it yields for
``retention_pause`` seconds, so claims and run reports, which need the same write lock on
SQLite, get in between: the queue is never held up for more than one batch. On PostgreSQL the
store takes rows with SKIP LOCKED, so the sweeps of several coordinators share the work
instead of waiting on each other.

:meth:`Retention.sweep` is one whole pass with the clock's time (tests call it directly);
:meth:`Retention.run` repeats it every ``retention_interval`` seconds, the first shortly
after start-up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError

__all__ = ["FIRST_SWEEP_DELAY", "Retention", "RetentionSweep"]

log = logging.getLogger(__name__)

#: The first sweep waits this long after start-up, past the busy moment of workers
#: reconnecting.
FIRST_SWEEP_DELAY: Final = 60.0


@dataclass(frozen=True)
class RetentionSweep:
    projects: int = 0
    batches: int = 0
    deleted_work_orders: int = 0
    deleted_dataclips: int = 0
    wiped_dataclips: int = 0
    expired_idempotency_keys: int = 0


class Retention:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def sweep(self) -> RetentionSweep:
        """Apply every project's policy now, a bounded batch at a time; then remove the
        expired idempotency keys, the same way."""
        settings = self._c.settings
        projects = await self._c.store.projects_with_retention()
        batches = orders = dataclips = wiped = 0
        for project in projects:
            while True:
                batch = await self._c.store.sweep_retention(
                    project.id, limit=settings.retention_batch
                )
                batches += 1
                orders += batch.deleted_work_orders
                dataclips += batch.deleted_dataclips
                wiped += batch.wiped_dataclips
                if not batch.more:
                    break
                await asyncio.sleep(settings.retention_pause)
        keys = await self._sweep_keys()
        done = RetentionSweep(len(projects), batches, orders, dataclips, wiped, keys)
        if orders or dataclips or wiped:
            log.info(
                "retention: %d work orders and %d dataclips deleted, %d bodies wiped "
                "(%d projects, %d batches)",
                orders,
                dataclips,
                wiped,
                len(projects),
                batches,
            )
        if keys:
            log.info("retention: %d expired idempotency keys removed", keys)
        return done

    async def _sweep_keys(self) -> int:
        """Expired idempotency keys (issue 14), in batches as the projects' rows are. Expired
        keys are already ignored (a request takes one over): this only keeps the table small."""
        settings = self._c.settings
        removed = 0
        while True:
            gone = await self._c.store.sweep_idempotency_keys(limit=settings.retention_batch)
            removed += gone
            if gone < settings.retention_batch:
                return removed
            await asyncio.sleep(settings.retention_pause)

    async def run(self) -> None:
        await asyncio.sleep(min(FIRST_SWEEP_DELAY, self._c.settings.retention_interval))
        while True:
            try:
                await self.sweep()
            except FulmenError as error:
                log.error("the retention sweep failed: %s", error)
            await asyncio.sleep(self._c.settings.retention_interval)
