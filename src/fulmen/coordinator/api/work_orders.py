"""Work orders and reruns (issue 8): a work order holds every run made for one trigger
event's input; rerunning one makes a new run in it, from a chosen step's stored input.

``POST /api/steps/{step_id}/rerun`` is what a "retry from this step" button calls (the
dashboard's, issue 6); ``POST /api/work_orders/rerun`` reruns many work orders from the same
job at once, as Lightning's bulk retry does. Reruns go to the ``manual`` queue with immediate
priority, like manual runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from fulmen.coordinator.api.schemas import (
    PathId,
    RerunErrorDoc,
    RerunIn,
    RerunsDoc,
    SnapshotDoc,
    StartedDoc,
    WorkOrderDoc,
)
from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError
from fulmen.store import Enqueued, RerunRequest, RunFilter

__all__ = ["router"]

router = APIRouter()

#: At most this many runs of one work order are listed with it (newest first).
MAX_RUNS_SHOWN = 100


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


@router.get("/work_orders/{work_order_id}", tags=["work orders"])
async def get_work_order(request: Request, work_order_id: PathId) -> WorkOrderDoc:
    """The work order, its state (its latest run's) and its runs, newest first."""
    store = _c(request).store
    order = await store.get_work_order(work_order_id)
    runs = await store.list_runs(RunFilter(work_order_id=work_order_id), limit=MAX_RUNS_SHOWN)
    return WorkOrderDoc.of(order, list(runs.items))


@router.post("/steps/{step_id}/rerun", tags=["work orders"], status_code=201)
async def rerun_step(request: Request, step_id: PathId) -> StartedDoc:
    """Run the step's work order again from this step: its stored input is the new run's
    input, its job the starting node (409 ``dataclip_wiped`` if that input is gone)."""
    c = _c(request)
    made = await c.store.rerun(RerunRequest(step_id=step_id, options=c.run_options()))
    _started(c)
    return _doc(made)


@router.post("/work_orders/rerun", tags=["work orders"], status_code=201)
async def rerun_work_orders(request: Request, body: RerunIn) -> RerunsDoc:
    """Run each work order again, from ``job_id`` (its step in the latest run that has one)
    or from the start. Each is its own transaction: the answer lists the runs made and, for
    the work orders that could not be rerun, why."""
    c = _c(request)
    runs: list[StartedDoc] = []
    errors: list[RerunErrorDoc] = []
    for work_order_id in dict.fromkeys(body.work_order_ids):
        try:
            made = await c.store.rerun(
                RerunRequest(
                    work_order_id=work_order_id, job_id=body.job_id, options=c.run_options()
                )
            )
        except FulmenError as error:
            errors.append(
                RerunErrorDoc(work_order_id=work_order_id, code=error.code, message=error.message)
            )
            continue
        runs.append(_doc(made))
    if runs:
        _started(c, len(runs))
    return RerunsDoc(runs=runs, errors=errors)


@router.get("/snapshots/{snapshot_id}", tags=["workflows"])
async def get_snapshot(request: Request, snapshot_id: PathId) -> SnapshotDoc:
    """One saved version of a workflow: what the runs that name it ran."""
    return SnapshotDoc.of(await _c(request).store.get_snapshot(snapshot_id))


def _started(c: Coordinator, count: int = 1) -> None:
    c.metrics.enqueued.labels("rerun").inc(count)
    c.hub.work_available()


def _doc(made: Enqueued) -> StartedDoc:
    return StartedDoc(
        work_order_id=made.work_order_id, run_id=made.run_id, dataclip_id=made.dataclip_id
    )
