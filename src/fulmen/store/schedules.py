"""The cron scheduler's cursors: each tick of a trigger enqueued exactly once.

A cursor holds the next tick of one cron trigger. Firing a tick is one transaction: a
compare-and-set moves the cursor from the tick being fired to the next one, and only if that
succeeds is the tick's run enqueued. Two coordinators firing the same tick (or one firing it
again after a restart from an old read) cannot both succeed: the second finds the cursor moved
and enqueues nothing. What the next tick is, and whether a late tick still runs (the misfire
policy), is decided by the caller (fulmen.coordinator.scheduler) with fulmen.cron: the store
does no cron arithmetic.

The cron cursor (issue 8) is resolved here, in the transaction that takes the tick: a run
with no input of its own starts from the final state of the workflow's last successful run,
or from the last successful output of a chosen job, when the trigger says so; with nothing
stored yet (the first run), from ``{}``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from fulmen.store.db import Tx
from fulmen.store.models.catalog import CronCursor
from fulmen.store.models.queue import Enqueued, EnqueueRequest
from fulmen.store.models.schedules import CronTick, CronTrigger
from fulmen.store.queue import enqueue

__all__ = ["fire_cron", "list_cron_triggers", "set_cron_cursor"]


async def list_cron_triggers(tx: Tx) -> list[CronTrigger]:
    rows = await tx.fetchall("list_cron_triggers")
    return [
        CronTrigger(
            trigger_id=row["id"],
            workflow_id=row["workflow_id"],
            expression=row["cron_expression"],
            timezone=row["timezone"],
            cursor_expression=row["cursor_expression"],
            cursor_timezone=row["cursor_timezone"],
            next_fire_at=None if row["next_fire_at"] is None else tx.time(row["next_fire_at"]),
            cron_cursor=CronCursor(row["cron_cursor"]),
            cron_cursor_job_id=row["cron_cursor_job_id"],
        )
        for row in rows
    ]


async def set_cron_cursor(
    tx: Tx, trigger_id: str, expression: str, timezone: str, next_fire_at: datetime, now: datetime
) -> None:
    """Start (or restart, for a changed schedule) a trigger's cursor at ``next_fire_at``."""
    await tx.execute(
        "set_cron_cursor",
        {
            "trigger_id": trigger_id,
            "expression": expression,
            "timezone": timezone,
            "next_fire_at": next_fire_at,
            "now": now,
        },
    )


async def fire_cron(tx: Tx, tick: CronTick, now: datetime) -> Enqueued | None:
    """Take ``tick`` and enqueue its run; ``None`` if the tick was already taken (or the
    trigger's schedule changed meanwhile), in which case nothing is written."""
    taken = await tx.execute(
        "advance_cron_cursor",
        {
            "trigger_id": tick.trigger_id,
            "expected_fire_at": tick.due_at,
            "next_fire_at": tick.next_fire_at,
            "fired_at": tick.due_at,
            "expression": tick.expression,
            "timezone": tick.timezone,
            "now": now,
        },
    )
    if taken != 1 or tick.run is None:
        return None
    run = tick.run
    if run.input is None and run.input_dataclip_id is None:
        run = dataclasses.replace(run, input_dataclip_id=await _cursor(tx, tick, run))
    return await enqueue(tx, run, now)


async def _cursor(tx: Tx, tick: CronTick, run: EnqueueRequest) -> str | None:
    """The dataclip a cursor points at now; ``None`` (start from ``{}``) when there is none."""
    cursor = CronCursor(tick.cron_cursor)
    if cursor is CronCursor.LAST_RUN:
        row = await tx.fetchone("last_run_final_state", {"workflow_id": run.workflow_id})
    elif cursor is CronCursor.JOB and tick.cron_cursor_job_id is not None:
        row = await tx.fetchone("last_job_output", {"job_id": tick.cron_cursor_job_id})
    else:
        return None
    return None if row is None else str(row["dataclip_id"])
