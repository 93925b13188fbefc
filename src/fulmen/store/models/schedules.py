"""Cron triggers and their ticks: schedules.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulmen.store.models.catalog import CronCursor
from fulmen.store.models.queue import EnqueueRequest

__all__ = ["CronTick", "CronTrigger"]


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """An enabled cron trigger and its cursor: the tick it fires next, and the schedule that
    tick was computed for (``None`` until the scheduler has seen the trigger)."""

    trigger_id: str
    workflow_id: str
    expression: str
    timezone: str | None
    cursor_expression: str | None = None
    cursor_timezone: str | None = None
    next_fire_at: datetime | None = None
    #: What the trigger's runs start from (issue 8).
    cron_cursor: CronCursor = CronCursor.NONE
    cron_cursor_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class CronTick:
    """Firing one tick: move the trigger's cursor from ``due_at`` to ``next_fire_at`` and, in
    the same transaction, enqueue ``run`` (``None``: the tick is skipped, only the cursor
    moves). ``expression`` and ``timezone`` are the schedule the times were computed for."""

    trigger_id: str
    expression: str
    timezone: str
    due_at: datetime
    next_fire_at: datetime
    run: EnqueueRequest | None
    #: Where the run's input comes from when ``run`` names none (issue 8).
    cron_cursor: CronCursor = CronCursor.NONE
    cron_cursor_job_id: str | None = None
