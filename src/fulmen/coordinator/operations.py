"""What a person asks of runs by hand, whichever door they use (the REST API or the
dashboard): start a run with an input, cancel a run, rerun work orders from a job. One
function each, so that both doors make the same rows, count the same metrics and wake the
same workers; the doors only read their requests and write their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError
from fulmen.lifecycle import CancelAction
from fulmen.store import (
    DataclipType,
    Enqueued,
    EnqueueRequest,
    NewDataclip,
    Priority,
    Queue,
    RerunRequest,
)
from fulmen.store.models.common import JSONValue

__all__ = ["announce", "cancel", "manual_run", "rerun_each", "start_manual_run"]


def manual_run(
    c: Coordinator,
    workflow_id: str,
    *,
    input: JSONValue | None = None,
    dataclip_id: str | None = None,
    starting_node_id: str | None = None,
) -> EnqueueRequest:
    """A run by hand: on the manual queue, claimed before other runs, from a new saved
    input or an existing dataclip of the workflow's project (not both: the store refuses)."""
    return EnqueueRequest(
        workflow_id=workflow_id,
        input=None if input is None else NewDataclip(DataclipType.SAVED_INPUT, input),
        input_dataclip_id=dataclip_id,
        starting_node_id=starting_node_id,
        queue=Queue.MANUAL,
        priority=Priority.IMMEDIATE,
        options=c.run_options(),
    )


async def start_manual_run(c: Coordinator, request: EnqueueRequest) -> Enqueued:
    made = await c.store.enqueue(request)
    announce(c, "manual")
    return made


async def cancel(c: Coordinator, run_id: str) -> CancelAction:
    """Cancel a run: a queued one at once; one a worker has is stopped by that worker, told
    over the run channel (``ASK_WORKER``). A finished run raises TransitionError."""
    action = await c.store.cancel_run(run_id)
    if action is CancelAction.NOW:
        c.hub.run_finished(run_id)
    else:
        c.hub.changes.changed(run_id)  # its page shows the cancel was asked
        await c.hub.tell_cancel([run_id])
    return action


async def rerun_each(
    c: Coordinator, work_order_ids: Sequence[str], job_id: str | None
) -> list[Enqueued | FulmenError]:
    """Rerun each work order from ``job_id`` (its step in the latest run that has one) or
    from the start, each in its own transaction: one that cannot be rerun (the job is not
    in its runs, its input was wiped) is answered with its error and stops no other."""
    made: list[Enqueued | FulmenError] = []
    for work_order_id in work_order_ids:
        request = RerunRequest(work_order_id=work_order_id, job_id=job_id, options=c.run_options())
        try:
            made.append(await c.store.rerun(request))
        except FulmenError as error:
            made.append(error)
    announce(c, "rerun", sum(1 for outcome in made if isinstance(outcome, Enqueued)))
    return made


def announce(c: Coordinator, kind: str, count: int = 1) -> None:
    """Count ``count`` runs made by hand (``kind``: manual, rerun, retry) and wake workers."""
    if count:
        c.metrics.enqueued.labels(kind).inc(count)
        c.hub.work_available()
