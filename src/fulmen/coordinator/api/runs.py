"""Runs (list with filters, get with steps, logs, cancel), dataclips, and manual runs."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response

from fulmen.coordinator import audit, operations
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PageDoc, PathId, Timestamp
from fulmen.coordinator.api.schemas.runs import (
    DataclipDoc,
    LogDoc,
    ManualRunIn,
    RunDetailDoc,
    RunDoc,
    StartedDoc,
)
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project, scope_of
from fulmen.coordinator.idempotency import KEY_OPENAPI, KEY_RESPONSES, key_of, respond
from fulmen.errors import InputError
from fulmen.lifecycle import CancelAction, RunState
from fulmen.store import (
    Answer,
    Enqueued,
    RunFilter,
)

__all__ = ["router"]

router = APIRouter()

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]

_STATE: Final = "|".join(state.value for state in RunState)
#: What :func:`_states` reads, so that the schema says it: at least one state, states apart
#: by commas, spaces and empty items around them (or nothing: any state).
STATES_PATTERN: Final = rf"^(?:[ ,]*(?:{_STATE})(?: *,[ ,]*(?:{_STATE}))*[ ,]*)?$"


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


def _states(text: str | None) -> frozenset[RunState] | None:
    if not text:
        return None
    try:
        return frozenset(RunState(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        known = ", ".join(state.value for state in RunState)
        raise InputError(f"state is a comma-separated list of {known}", code="bad_state") from None


@router.get("/runs", tags=["runs"])
async def list_runs(
    request: Request,
    me: Caller,
    project_id: str | None = None,
    workflow_id: str | None = None,
    work_order_id: str | None = None,
    state: Annotated[
        str | None, Query(description="comma-separated states", pattern=STATES_PATTERN)
    ] = None,
    since: Annotated[Timestamp | None, Query(description="inserted at or after")] = None,
    until: Annotated[Timestamp | None, Query(description="inserted before")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageDoc[RunDoc]:
    """Runs of the caller's projects, newest first (``project_id`` of another: 404)."""
    c = _c(request)
    if project_id is not None:
        await require_project(c.store, me, Permission.READ, project_id)
    where = RunFilter(
        project_id=project_id,
        workflow_id=workflow_id,
        work_order_id=work_order_id,
        states=_states(state),
        inserted_from=since,
        inserted_until=until,
    )
    scope = await scope_of(c.store, me)
    page = await c.store.list_runs(scope.runs(where), cursor=cursor, limit=limit)
    items = [RunDoc.of(run, c.hub.waiting_for(run)) for run in page.items]
    return PageDoc(items=items, next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", tags=["runs"])
async def get_run(request: Request, me: Caller, run_id: PathId) -> RunDetailDoc:
    c = _c(request)
    await require_on(c.store, me, Permission.READ, "run", run_id)
    detail = await c.store.get_run(run_id)
    return RunDetailDoc.of_detail(detail, c.hub.waiting_for(detail.run))


@router.get("/runs/{run_id}/logs", tags=["runs"])
async def get_logs(
    request: Request,
    me: Caller,
    run_id: PathId,
    cursor: Cursor = None,
    # the store's largest page (fulmen.store.paging.MAX_LIMIT); 5000 was advertised and refused
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> PageDoc[LogDoc]:
    await require_on(_c(request).store, me, Permission.READ, "run", run_id)
    page = await _c(request).store.get_logs(run_id, cursor=cursor, limit=limit)
    return PageDoc(items=[LogDoc.of(line) for line in page.items], next_cursor=page.next_cursor)


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    responses={202: {"description": "Asked of the worker that has the run"}},
)
async def cancel_run(
    request: Request, me: Caller, run_id: PathId, response: Response
) -> RunDetailDoc:
    """Cancel a run. A queued run is cancelled at once (200). A run a worker has is
    stopped by that worker, told over the run channel (202, with ``cancel_requested_at``
    set; the run ends ``cancelled`` when the worker has stopped it; an OpenFn ws-worker
    does not understand the request and finishes the run). A finished run is 409."""
    c = _c(request)
    await require_on(c.store, me, Permission.RUN, "run", run_id)
    if await operations.cancel(c, audit.actor(request, me), run_id) is CancelAction.ASK_WORKER:
        response.status_code = 202
    return RunDetailDoc.of_detail(await c.store.get_run(run_id))


@router.get("/dataclips/{dataclip_id}", tags=["dataclips"])
async def get_dataclip(request: Request, me: Caller, dataclip_id: PathId) -> DataclipDoc:
    """Its body takes the editor role, or a viewer's where the project allows it."""
    store = _c(request).store
    await require_on(store, me, Permission.READ_BODIES, "dataclip", dataclip_id)
    return DataclipDoc.of(await store.get_dataclip(dataclip_id))


@router.post(
    "/workflows/{workflow_id}/runs",
    tags=["runs"],
    status_code=201,
    response_model=StartedDoc,
    responses=KEY_RESPONSES,
    openapi_extra=KEY_OPENAPI,
)
async def run_workflow(
    request: Request,
    me: Caller,
    workflow_id: PathId,
    body: ManualRunIn,
) -> StartedDoc | Response:
    """A manual run from the given input: the manual queue, claimed before other runs.

    With an ``Idempotency-Key``, the same request to this workflow again (within a day by
    default) is answered as the first was, with ``Idempotent-Replayed: true``, and makes no
    run."""
    c = _c(request)
    await require_on(c.store, me, Permission.RUN, "workflow", workflow_id)
    if body.dataclip_id is not None and "input" in body.model_fields_set:
        raise InputError("give an input or a dataclip_id, not both", code="input_and_dataclip")
    enqueue = operations.manual_run(
        c,
        workflow_id,
        input=None if body.dataclip_id is not None else body.input,
        dataclip_id=body.dataclip_id,
        starting_node_id=body.starting_node_id,
    )
    scope = f"POST /api/workflows/{workflow_id}/runs"
    key = key_of(request, scope, body.model_dump(mode="json"), c.settings.idempotency_key_ttl)
    by = audit.actor(request, me)
    if key is None:
        return StartedDoc.of(await operations.start_manual_run(c, by, enqueue))
    started: list[Enqueued] = []

    def answer(made: Enqueued) -> Answer:
        started.append(made)
        return Answer(201, StartedDoc.of(made).model_dump(mode="json"))

    async with c.store.together():
        answered = await c.store.enqueue_once(enqueue, key, answer)
        if started:  # not replayed: a run was made now
            await operations.note_start(c, by, enqueue, started[0])
    if not answered.replayed:
        operations.announce(c, "manual")
    return respond(answered)
