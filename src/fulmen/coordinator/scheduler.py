"""Cron triggers: each tick enqueued exactly once, across restarts and coordinators.

Each enabled cron trigger has a cursor in the store: the next tick it fires. A pass
(:meth:`Scheduler.tick`, with the clock's time) does, per trigger:

1. No cursor yet, or its expression or zone changed: start the cursor at the next fire time
   after now. A new or edited trigger never fires for a time before it existed.
2. The cursor's tick is due: take it with the store's compare-and-set, which moves the cursor
   to the next fire time after now *and* enqueues the tick's run in one transaction. Only one
   coordinator can take a tick; a restart re-reads the cursor, so a tick taken before the
   restart is not taken again, and one not taken yet still is.

Misfire policy (notes/stack-research.md §5.7: no surprise catch-up): a tick is run only if it
is at most ``cron_misfire_grace`` seconds late. After downtime, the ticks missed are skipped,
except the latest one if it is still within the grace; there is never more than one run per
trigger per pass. The cursor always moves to the first fire time after now.

Runs from cron have normal priority (after manual and webhook runs, §4.4), the ``default``
queue, and start from an empty input, or from what the trigger's cron cursor points at
(issue 8: the last successful run's final state, or a job's last successful output), which
the store reads in the transaction that takes the tick.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Final

from fulmen import cron
from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError, InputError
from fulmen.store import CronTick, CronTrigger, Enqueued, EnqueueRequest, Priority, Queue

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

#: The longest a pass sleeps: new and edited triggers are picked up at least this often.
MAX_SLEEP: Final = 1.0


class Scheduler:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def tick(self) -> list[Enqueued]:
        """One pass at the clock's current time; the runs it enqueued."""
        now = self._c.clock.now()
        enqueued: list[Enqueued] = []
        for trigger in await self._c.store.list_cron_triggers():
            try:
                done = await self._visit(trigger, now)
            except InputError as error:
                log.error("cron trigger %s is unusable: %s", trigger.trigger_id, error)
                continue
            if done is not None:
                enqueued.append(done)
        if enqueued:
            self._c.metrics.enqueued.labels("cron").inc(len(enqueued))
            self._c.hub.work_available()
        return enqueued

    async def _visit(self, trigger: CronTrigger, now: datetime) -> Enqueued | None:
        spec = cron.parse(trigger.expression, trigger.timezone)
        current = (trigger.cursor_expression, trigger.cursor_timezone)
        if trigger.next_fire_at is None or current != (spec.expression, spec.timezone):
            await self._c.store.set_cron_cursor(
                trigger.trigger_id, spec.expression, spec.timezone, cron.next_fire(spec, now)
            )
            return None
        if trigger.next_fire_at > now:
            return None
        latest = cron.last_fire(spec, now) or trigger.next_fire_at
        late = now - latest
        run = None
        if late <= timedelta(seconds=self._c.settings.cron_misfire_grace):
            run = EnqueueRequest(
                workflow_id=trigger.workflow_id,
                trigger_id=trigger.trigger_id,
                queue=Queue.DEFAULT,
                priority=Priority.NORMAL,
                options=self._c.run_options(),
            )
        else:
            log.warning(
                "cron trigger %s: tick of %s is %s late; skipped (misfire grace %ss)",
                trigger.trigger_id,
                latest.isoformat(),
                late,
                self._c.settings.cron_misfire_grace,
            )
        tick = CronTick(
            trigger_id=trigger.trigger_id,
            expression=spec.expression,
            timezone=spec.timezone,
            due_at=trigger.next_fire_at,
            next_fire_at=cron.next_fire(spec, now),
            run=run,
            cron_cursor=trigger.cron_cursor,
            cron_cursor_job_id=trigger.cron_cursor_job_id,
        )
        return await self._c.store.fire_cron(tick)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except FulmenError as error:
                log.error("the cron pass failed: %s", error)
            await asyncio.sleep(MAX_SLEEP)
