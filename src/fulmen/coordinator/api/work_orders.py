"""Work orders and reruns (issue 8): a work order holds every run made for one trigger
event's input; rerunning one makes a new run in it, from a chosen step's stored input.

``POST /api/steps/{step_id}/rerun`` is what a "retry from this step" button calls (the
dashboard's, issue 6); ``POST /api/work_orders/rerun`` reruns many work orders from the same
job at once, as Lightning's bulk retry does. Reruns go to the ``manual`` queue with immediate
priority, like manual runs. Both take an ``Idempotency-Key`` (fulmen.coordinator.idempotency).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit, operations
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.catalog import SnapshotDoc
from fulmen.coordinator.api.schemas.common import PathId
from fulmen.coordinator.api.schemas.runs import StartedDoc
from fulmen.coordinator.api.schemas.work_orders import (
    RerunErrorDoc,
    RerunIn,
    RerunsDoc,
    WorkOrderDoc,
)
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_each, require_on
from fulmen.coordinator.idempotency import KEY_OPENAPI, KEY_RESPONSES, key_of, respond
from fulmen.errors import FulmenError
from fulmen.store import Answer, Enqueued, RerunRequest, RunFilter

__all__ = ["router"]

router = APIRouter()

#: At most this many runs of one work order are listed with it (newest first).
MAX_RUNS_SHOWN = 100


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


@router.get("/work_orders/{work_order_id}", tags=["work orders"])
async def get_work_order(request: Request, me: Caller, work_order_id: PathId) -> WorkOrderDoc:
    """The work order, its state (its latest run's) and its runs, newest first."""
    store = _c(request).store
    await require_on(store, me, Permission.READ, "work_order", work_order_id)
    order = await store.get_work_order(work_order_id)
    runs = await store.list_runs(RunFilter(work_order_id=work_order_id), limit=MAX_RUNS_SHOWN)
    return WorkOrderDoc.of(order, list(runs.items))


@router.post(
    "/steps/{step_id}/rerun",
    tags=["work orders"],
    status_code=201,
    response_model=StartedDoc,
    responses=KEY_RESPONSES,
    openapi_extra=KEY_OPENAPI,
)
async def rerun_step(
    request: Request,
    me: Caller,
    step_id: PathId,
) -> StartedDoc | Response:
    """Run the step's work order again from this step: its stored input is the new run's
    input, its job the starting node (409 ``dataclip_wiped`` if that input is gone). With an
    ``Idempotency-Key``, the same request again is answered as the first was."""
    c = _c(request)
    await require_on(c.store, me, Permission.RUN, "step", step_id)
    by = audit.actor(request, me)
    rerun = RerunRequest(step_id=step_id, options=c.run_options())
    scope = f"POST /api/steps/{step_id}/rerun"
    key = key_of(request, scope, {}, c.settings.idempotency_key_ttl)
    if key is None:
        return StartedDoc.of(await operations.rerun(c, by, rerun))
    made_now: list[Enqueued] = []

    def answer(made: Enqueued) -> Answer:
        made_now.append(made)
        return Answer(201, StartedDoc.of(made).model_dump(mode="json"))

    async with c.store.together():
        answered = await c.store.rerun_once(rerun, key, answer)
        for made in made_now:  # none when replayed
            await operations.note_rerun(c, by, rerun, made)
    if not answered.replayed:
        _started(c)
    return respond(answered)


@router.post(
    "/work_orders/rerun",
    tags=["work orders"],
    status_code=201,
    response_model=RerunsDoc,
    responses=KEY_RESPONSES,
    openapi_extra=KEY_OPENAPI,
)
async def rerun_work_orders(
    request: Request,
    me: Caller,
    body: RerunIn,
) -> RerunsDoc | Response:
    """Run each work order again, from ``job_id`` (its step in the latest run that has one)
    or from the start. Each is its own transaction: the answer lists the runs made and, for
    the work orders that could not be rerun, why. With an ``Idempotency-Key``, all of them
    and the key are one transaction, and the same request again is answered as the first
    was. A work order the caller may not rerun refuses the whole request, before any run
    is made."""
    c = _c(request)
    by = audit.actor(request, me)
    ids = list(dict.fromkeys(body.work_order_ids))
    await require_each(c.store, me, Permission.RUN, "work_order", ids)
    reruns = [
        RerunRequest(work_order_id=work_order_id, job_id=body.job_id, options=c.run_options())
        for work_order_id in ids
    ]
    scope = "POST /api/work_orders/rerun"
    key = key_of(request, scope, body.model_dump(mode="json"), c.settings.idempotency_key_ttl)
    if key is None:
        return _reruns_doc(ids, await operations.rerun_each(c, by, ids, body.job_id))
    docs: list[RerunsDoc] = []
    made_now: list[tuple[RerunRequest, Enqueued]] = []

    def answer(made: list[Enqueued | FulmenError]) -> Answer:
        docs.append(_reruns_doc(ids, made))
        pairs = zip(reruns, made, strict=True)
        made_now.extend((rerun, m) for rerun, m in pairs if isinstance(m, Enqueued))
        return Answer(201, docs[-1].model_dump(mode="json"))

    async with c.store.together():
        answered = await c.store.rerun_each_once(reruns, key, answer)
        for rerun, made in made_now:  # none when replayed
            await operations.note_rerun(c, by, rerun, made)
    if not answered.replayed:
        _started(c, len(docs[-1].runs))
    return respond(answered)


def _reruns_doc(ids: list[str], made: list[Enqueued | FulmenError]) -> RerunsDoc:
    runs: list[StartedDoc] = []
    errors: list[RerunErrorDoc] = []
    for work_order_id, outcome in zip(ids, made, strict=True):
        if isinstance(outcome, FulmenError):
            errors.append(
                RerunErrorDoc(
                    work_order_id=work_order_id, code=outcome.code, message=outcome.message
                )
            )
        else:
            runs.append(StartedDoc.of(outcome))
    return RerunsDoc(runs=runs, errors=errors)


@router.get("/snapshots/{snapshot_id}", tags=["workflows"])
async def get_snapshot(request: Request, me: Caller, snapshot_id: PathId) -> SnapshotDoc:
    """One saved version of a workflow: what the runs that name it ran."""
    store = _c(request).store
    await require_on(store, me, Permission.READ, "snapshot", snapshot_id)
    return SnapshotDoc.of(await store.get_snapshot(snapshot_id))


def _started(c: Coordinator, count: int = 1) -> None:
    operations.announce(c, "rerun", count)
