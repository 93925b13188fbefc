"""The retention sweep's work, one bounded batch per transaction.

Each batch deletes or wipes at most ``limit`` rows of each kind, so a transaction stays short
whatever the backlog (a first sweep after a long period can face 100,000 runs): on SQLite the
write lock is held for one batch at a time and claims get in between; on PostgreSQL the rows
are taken with SKIP LOCKED, so sweeps on several coordinators never wait on each other, nor on
a run being completed. What goes is :mod:`~fulmen.store.retention_policy`'s decision:

1. work orders older than the history period, with their runs, steps and logs, unless one of
   their runs is newer (a rerun, a retry) or has not ended;
2. dataclip rows older than the history period;
3. dataclip bodies older than the body period (or, in ``erase_all`` mode, left behind);

never the input of a run that has not ended.
"""

from __future__ import annotations

from datetime import datetime

from fulmen.errors import InputError
from fulmen.store.batches import BATCH_BYTES
from fulmen.store.catalog import get_project, project_of
from fulmen.store.db import Tx
from fulmen.store.models.catalog import Project
from fulmen.store.models.retention import RetentionBatch
from fulmen.store.retention_policy import cutoffs

__all__ = ["projects_with_retention", "sweep_batch"]


async def projects_with_retention(tx: Tx) -> list[Project]:
    return [project_of(tx, row) for row in await tx.fetchall("projects_with_retention")]


async def sweep_batch(
    tx: Tx, project_id: str, limit: int, now: datetime, max_bytes: int = BATCH_BYTES
) -> RetentionBatch:
    """One batch of the project's sweep at ``now``: of each kind, up to ``limit`` rows, and
    of dataclips as many as fit ``max_bytes`` of bodies (at least one; store/batches.py).
    ``more`` when it took anything: the next batch may find more."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"a retention batch is a positive number of rows, not {limit!r}")
    cut = cutoffs(await get_project(tx, project_id), now)
    base = {"project_id": project_id, "limit": limit, "max_bytes": max_bytes, "now": now}
    orders = dataclips = wiped = 0
    if cut.history_before is not None:
        before = {**base, "before": cut.history_before}
        orders = await tx.execute("delete_old_work_orders", before)
        dataclips = await tx.execute("delete_old_dataclips", before)
    if cut.bodies_before is not None:
        wiped = await tx.execute(
            "wipe_old_dataclips",
            {**base, "before": cut.bodies_before, "kept_from": cut.history_before},
        )
    return RetentionBatch(
        deleted_work_orders=orders,
        deleted_dataclips=dataclips,
        wiped_dataclips=wiped,
        more=orders + dataclips + wiped > 0,
    )
