"""What a person asks of runs by hand, whichever door they use (the REST API or the
dashboard): start a run with an input, cancel a run, rerun work orders from a job or a step.
One function each, so that both doors make the same rows, count the same metrics, wake the
same workers and leave the same record in the audit trail (``run.started``,
``run.cancel_requested``, ``work_order.rerun``: who, from where, which run; never the input's
body); the doors only read their requests and write their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from fulmen.coordinator import audit
from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError
from fulmen.lifecycle import CancelAction
from fulmen.store import (
    Actor,
    DataclipType,
    Enqueued,
    EnqueueRequest,
    NewDataclip,
    Priority,
    Queue,
    RerunRequest,
    Target,
)
from fulmen.store.models.common import JSONValue

__all__ = [
    "announce",
    "cancel",
    "manual_run",
    "note_rerun",
    "note_start",
    "rerun",
    "rerun_each",
    "start_manual_run",
]


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


async def start_manual_run(c: Coordinator, by: Actor, request: EnqueueRequest) -> Enqueued:
    async with c.store.together():
        made = await c.store.enqueue(request)
        await note_start(c, by, request, made)
    announce(c, "manual")
    return made


async def note_start(c: Coordinator, by: Actor, request: EnqueueRequest, made: Enqueued) -> None:
    """The audit record of a run started by hand (in the block that enqueued it; the
    ``Idempotency-Key`` path enqueues through the store's ``enqueue_once``)."""
    await audit.record(
        c.store,
        by,
        "run.started",
        Target("run", made.run_id),
        project_id=made.project_id,
        after={
            "run_id": made.run_id,
            "work_order_id": made.work_order_id,
            "workflow_id": made.workflow_id,
            "starting_node_id": request.starting_node_id,
            "dataclip_id": made.dataclip_id,
        },
    )


async def cancel(c: Coordinator, by: Actor, run_id: str) -> CancelAction:
    """Cancel a run: a queued one at once; one a worker has is stopped by that worker, told
    over the run channel (``ASK_WORKER``). A finished run raises TransitionError."""
    run = await c.store.peek_run(run_id)
    async with c.store.together():
        action = await c.store.cancel_run(run_id)
        await audit.record(
            c.store,
            by,
            "run.cancel_requested",
            Target("run", run_id),
            project_id=run.project_id,
            before={"state": run.state.value},
            detail={"cancelled": "now" if action is CancelAction.NOW else "by its worker"},
        )
    if action is CancelAction.NOW:
        c.hub.run_finished(run_id)
    else:
        c.hub.changes.changed(run_id)  # its page shows the cancel was asked
        await c.hub.tell_cancel([run_id])
    return action


async def rerun(c: Coordinator, by: Actor, request: RerunRequest, kind: str = "rerun") -> Enqueued:
    """A new run of a work order, from a step's input or a job's (RerunRequest), and its
    audit record, in one transaction; counted as ``kind`` (rerun, retry)."""
    async with c.store.together():
        made = await c.store.rerun(request)
        await note_rerun(c, by, request, made)
    announce(c, kind)
    return made


async def note_rerun(c: Coordinator, by: Actor, request: RerunRequest, made: Enqueued) -> None:
    """The audit record of a rerun (in the block that made it)."""
    await audit.record(
        c.store,
        by,
        "work_order.rerun",
        Target("work_order", made.work_order_id),
        project_id=made.project_id,
        after={
            "run_id": made.run_id,
            "workflow_id": made.workflow_id,
            "step_id": request.step_id,
            "job_id": request.job_id,
        },
    )


async def rerun_each(
    c: Coordinator, by: Actor, work_order_ids: Sequence[str], job_id: str | None
) -> list[Enqueued | FulmenError]:
    """Rerun each work order from ``job_id`` (its step in the latest run that has one) or
    from the start, each in its own transaction: one that cannot be rerun (the job is not
    in its runs, its input was wiped) is answered with its error and stops no other."""
    made: list[Enqueued | FulmenError] = []
    for work_order_id in work_order_ids:
        request = RerunRequest(work_order_id=work_order_id, job_id=job_id, options=c.run_options())
        try:
            async with c.store.together():
                enqueued = await c.store.rerun(request)
                await note_rerun(c, by, request, enqueued)
            made.append(enqueued)
        except FulmenError as error:
            made.append(error)
    announce(c, "rerun", sum(1 for outcome in made if isinstance(outcome, Enqueued)))
    return made


def announce(c: Coordinator, kind: str, count: int = 1) -> None:
    """Count ``count`` runs made by hand (``kind``: manual, rerun, retry) and wake workers."""
    if count:
        c.metrics.enqueued.labels(kind).inc(count)
        c.hub.work_available()
