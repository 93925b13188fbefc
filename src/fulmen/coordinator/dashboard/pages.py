"""The dashboard's list pages: workflows with their triggers, runs (filtered, updated live by
the page's script polling ``/ui/runs/rows``), the header's queue and worker figures, and the
sign-in page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fulmen.coordinator.api.auth import verify
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.render import fragment, page
from fulmen.coordinator.dashboard.session import (
    PREFIX,
    safe_next,
    same_origin,
    sign_out,
    signed_in,
    start,
    viewer,
)
from fulmen.coordinator.dashboard.views import BAD_STATES, run_row
from fulmen.lifecycle import RunState
from fulmen.store import ApiToken, Project, RunFilter, Store, StoredWorkflow

__all__ = ["STATUS_FILTERS", "router", "status"]

router = APIRouter()

Viewer = Annotated[ApiToken, Depends(viewer)]

#: The runs list's status filter: a few groups a person thinks in, each a set of states.
STATUS_FILTERS: Final[dict[str, frozenset[RunState]]] = {
    "queued": frozenset({RunState.AVAILABLE}),
    "running": frozenset({RunState.CLAIMED, RunState.STARTED}),
    "success": frozenset({RunState.SUCCESS}),
    "failed": frozenset(BAD_STATES),
    "cancelled": frozenset({RunState.CANCELLED}),
}
RUNS_PAGE: Final = 50


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


async def status(c: Coordinator) -> dict[str, Any]:
    """The header's figures: runs waiting in the queues, and connected workers."""
    depth = await c.store.queue_depth()
    return {"queued": sum(depth.values()), "queues": depth, "workers": c.hub.connected}


async def catalog(store: Store) -> list[tuple[Project, list[StoredWorkflow]]]:
    """Every project with its workflows (a self-hosted coordinator has tens, not thousands)."""
    out: list[tuple[Project, list[StoredWorkflow]]] = []
    cursor = None
    while True:
        projects = await store.list_projects(cursor=cursor, limit=100)
        for project in projects.items:
            workflows: list[StoredWorkflow] = []
            inner = None
            while True:
                listed = await store.list_workflows(project.id, cursor=inner, limit=100)
                workflows.extend(listed.items)
                if (inner := listed.next_cursor) is None:
                    break
            out.append((project, workflows))
        if (cursor := projects.next_cursor) is None:
            return out


# -- signing in --------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return page("login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = PREFIX
) -> Response:
    if not same_origin(request):
        return page("login.html", 403, next=safe_next(next), error="Sign in from this site.")
    stored = await verify(_c(request).store, token.strip(), what="dashboard sign-in")
    if stored is None:
        return page("login.html", 401, next=safe_next(next), error="That token is not valid.")
    response = RedirectResponse(safe_next(next), 303)
    await start(response, request, stored)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", 303)
    if same_origin(request):
        await sign_out(response, request)
    return response


# -- workflows ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def workflows(request: Request, _: Viewer) -> Response:
    c = _c(request)
    base = str(request.base_url).rstrip("/")
    projects = []
    for project, stored in await catalog(c.store):
        items = []
        for workflow in stored:
            last = await c.store.list_runs(RunFilter(workflow_id=workflow.workflow.id), limit=1)
            items.append({"stored": workflow, "last": last.items[0] if last.items else None})
        projects.append({"project": project, "workflows": items})
    return page(
        "workflows.html",
        section="workflows",
        projects=projects,
        base=base,
        status=await status(c),
    )


# -- runs --------------------------------------------------------------------------------------


async def _runs(
    c: Coordinator, workflow_id: str | None, state: str | None, cursor: str | None
) -> dict[str, Any]:
    names = {w.workflow.id: w.workflow.name for _, listed in await catalog(c.store) for w in listed}
    where = RunFilter(workflow_id=workflow_id or None, states=STATUS_FILTERS.get(state or ""))
    listed = await c.store.list_runs(where, cursor=cursor, limit=RUNS_PAGE)
    now = datetime.now(UTC)
    return {
        "rows": [run_row(run, names, now) for run in listed.items],
        "next_cursor": listed.next_cursor,
        "workflows": sorted(names.items(), key=lambda item: item[1]),
        "workflow_id": workflow_id or "",
        "state": state or "",
        "filters": list(STATUS_FILTERS),
        "paged": cursor is not None,
    }


Filter = Annotated[str | None, Query()]


@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request,
    _: Viewer,
    workflow_id: Filter = None,
    state: Filter = None,
    cursor: Filter = None,
) -> Response:
    c = _c(request)
    listing = await _runs(c, workflow_id, state, cursor)
    return page(
        "runs.html", section="runs", status=await status(c), query=request.url.query, **listing
    )


@router.get("/runs/rows", response_class=HTMLResponse)
async def run_rows(
    request: Request, _: Viewer, workflow_id: Filter = None, state: Filter = None
) -> Response:
    """The first page's rows, for the list's live update."""
    listing = await _runs(_c(request), workflow_id, state, None)
    return fragment("_run_rows.html", **listing)


@router.get("/status")
async def status_json(request: Request, _: Viewer) -> JSONResponse:
    return JSONResponse(await status(_c(request)), headers={"Cache-Control": "no-store"})
