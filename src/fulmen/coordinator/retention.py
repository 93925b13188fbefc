"""The retention sweep (issue 8): each project's history and dataclip bodies kept no longer
than it says, once a day; the idempotency keys past their window (issue 14) removed; and the
audit trail's records past theirs (issue 18: a project's as long as its history, never fewer
than ``FULMEN_AUDIT_MIN_RETENTION_DAYS``; the instance's ``FULMEN_AUDIT_RETENTION_DAYS``;
fulmen.store.retention_policy.audit_cutoff decides, the store's one allowed delete does it).

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
from fulmen.store import Project
from fulmen.store.retention_policy import audit_cutoff

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
    audit_records: int = 0


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
        records = await self._sweep_audit(projects)
        done = RetentionSweep(len(projects), batches, orders, dataclips, wiped, keys, records)
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
        if records:
            log.info("retention: %d audit records past their retention removed", records)
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

    async def _sweep_audit(self, projects: list[Project]) -> int:
        """Audit records past their retention: each project's with a history period (the
        others keep theirs for good), then the instance's and deleted projects', in batches."""
        settings = self._c.settings
        now = self._c.clock.now()
        removed = 0
        scopes: list[Project | None] = [*projects, None]
        for project in scopes:
            before = audit_cutoff(
                project,
                now,
                floor_days=settings.audit_min_retention_days,
                instance_days=settings.audit_retention_days,
            )
            if before is None:
                continue
            project_id = project.id if project is not None else None
            while True:
                gone = await self._c.store.sweep_audit(
                    project_id, before, limit=settings.retention_batch
                )
                removed += gone
                if gone < settings.retention_batch:
                    break
                await asyncio.sleep(settings.retention_pause)
        return removed

    async def run(self) -> None:
        await asyncio.sleep(min(FIRST_SWEEP_DELAY, self._c.settings.retention_interval))
        while True:
            try:
                await self.sweep()
            except FulmenError as error:
                log.error("the retention sweep failed: %s", error)
            await asyncio.sleep(self._c.settings.retention_interval)
