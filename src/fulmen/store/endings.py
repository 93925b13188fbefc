"""What follows, in the same transaction, when a run reaches a final state.

Every way a run ends (``run:complete``, the lost-run sweep, a cancel while queued) calls
:func:`after_end` before its transaction commits, so what follows can never be lost between
two transactions:

1. **A retry** (issue 8), when the workflow's policy says so (fulmen.store.retry_policy): a
   new run in the same work order, with the same snapshot, input and starting node, attempt
   number one higher, ``retry_of`` naming the run it retries, not claimed before its
   backoff has passed. It goes to the ``manual`` queue with immediate priority, as Lightning
   queues retries (worker-protocol.md §4.4).
2. **The input's body is wiped** when the run does not keep bodies (plan option
   ``output_dataclips`` off: an ``erase_all`` project), unless a run that has not ended still
   needs it (the retry just made, for one). Wiping here, rather than when the worker fetched
   it as Lightning does, is what lets a retry replay the input.
3. **An alert ending** (issue 18), when the workflow's alert rule names the state the run
   ended in: one row in the alerts' outbox (fulmen.store.alert_outbox), which a dispatcher
   folds into an alert later, in a transaction of its own. No channel is contacted here,
   and a failed run of a workflow without a rule costs one statement that inserts nothing
   (a successful run, none).
4. **The count of runs ended in that state** (``run_endings``, /metrics'
   ``fulmen_runs_ended_total``) goes up by one, in one of :data:`ENDING_SHARDS` rows picked
   by the run's id: coordinators sharing a PostgreSQL store, whose runs end at the same
   moments, then seldom wait for each other's row lock until their commits.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from uuid import uuid4

from fulmen.lifecycle import RunState
from fulmen.plan import Options
from fulmen.store import alert_outbox, alert_policy, retry_policy
from fulmen.store.db import Row, Tx, loads
from fulmen.store.models.catalog import RetryPolicy
from fulmen.store.models.queue import Priority, Queue
from fulmen.store.newruns import NewRun, insert_run

__all__ = ["ENDING_SHARDS", "after_end"]

#: Rows per final state in ``run_endings``.
ENDING_SHARDS = 16


async def after_end(tx: Tx, run: Row, state: RunState, now: datetime) -> str | None:
    """Retry or clean up after ``run`` (its row as it was read) ended in ``state`` at ``now``;
    the id of the retry made, if any."""
    retry_id = await _retry(tx, run, state, now)
    shard = zlib.crc32(run["id"].encode()) % ENDING_SHARDS
    await tx.execute("count_run_ending", {"state": state.value, "shard": shard})
    if state in alert_policy.ALERTABLE:
        await alert_outbox.note_ending(tx, run["id"], now)
    options = Options(**loads(run["options"]))
    if not options.output_dataclips and run["dataclip_id"] is not None:
        await tx.execute("wipe_unused_dataclip", {"id": run["dataclip_id"], "now": now})
    return retry_id


async def _retry(tx: Tx, run: Row, state: RunState, now: datetime) -> str | None:
    row = await tx.fetchone("run_policies", {"workflow_id": run["workflow_id"]})
    if row is None:
        return None
    policy = RetryPolicy(
        max_retries=row["max_retries"],
        backoff_ms=row["retry_backoff_ms"],
        backoff_max_ms=row["retry_backoff_max_ms"],
        on_fail=bool(row["retry_on_fail"]),
    )
    retry = retry_policy.next_retry(
        policy,
        state=state,
        attempt=run["attempt"],
        ended_at=now,
        cancel_requested=run["cancel_requested_at"] is not None,
    )
    if retry is None:
        return None
    retry_id = str(uuid4())
    await insert_run(
        tx,
        NewRun(
            id=retry_id,
            work_order_id=run["work_order_id"],
            workflow_id=run["workflow_id"],
            project_id=run["project_id"],
            snapshot_id=run["snapshot_id"],
            dataclip_id=run["dataclip_id"],
            starting_node_id=run["starting_node_id"],
            queue=Queue.MANUAL,
            priority=Priority.IMMEDIATE,
            options=Options(**loads(run["options"])),
            attempt=retry.attempt,
            retry_of=run["id"],
            not_before=retry.not_before,
            languages=run["languages"],
        ),
        now,
    )
    return retry_id
