"""The run page: the run and its steps as a timeline, its logs, its dataclips, the other runs
of its work order, and retrying it from a chosen step.

Logs come a page at a time (``LOG_PAGE`` lines, the store's largest page): the page holds the
first, the script fetches the next as the reader scrolls towards them, and a run in flight is
followed by re-reading its last page. So a 10,000-line log costs one page up front.

Retrying from a step makes a new run in the same work order, starting at that step's job with
that step's input (the whole run: the run's own input and starting node). It runs the
workflow's current version, as Lightning's retries do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, operations
from fulmen.coordinator.access import Permission, Principal, allowed
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.graph import Graph, NodeRun, node_runs, workflow_graph
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import fragment, page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, same_origin
from fulmen.coordinator.dashboard.views import (
    RunRow,
    TimelineStep,
    duration,
    job_names,
    pretty_json,
    run_row,
    state_class,
    timeline,
    visible_dataclip,
)
from fulmen.coordinator.guard import may_read_bodies, require_on
from fulmen.errors import AccessError, FulmenError, NotFoundError
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import (
    Actor,
    KeychainChoice,
    RerunRequest,
    Run,
    RunDetail,
    RunFilter,
    Workflow,
)

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

LOG_PAGE: Final = 1000


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


@dataclass(frozen=True, slots=True)
class LiveRun:
    """The part of the run page that changes while the run goes on (re-read by the script)."""

    run: Run
    workflow: Workflow
    version: int
    css: str
    final: bool
    duration: str
    starting_node: str
    steps: list[TimelineStep]
    #: The runs of its work order (retries), newest first.
    siblings: list[RunRow]
    #: Why it is still queued, when no worker here runs its languages (``Hub.waiting_for``).
    waiting_for: str | None = None
    #: The workflow's graph as this run's version had it, and each job's step in the run.
    graph: Graph | None = None
    node_runs: dict[str, NodeRun] = field(default_factory=dict)
    #: What the reader may do: cancel and retry it (``run``), open its dataclips (``bodies``).
    may_run: bool = False
    bodies: bool = False
    #: What each keychain of its jobs chose (issue 19), with the credential's name.
    keychains: list[tuple[KeychainChoice, str]] = field(default_factory=list)

    @property
    def step_names(self) -> dict[str, str]:
        return {s.step.id: s.job_name for s in self.steps}

    @property
    def node_links(self) -> dict[str, str]:
        """Each node that ran links to its step on the page."""
        return {job_id: f"#step-{node.step_id}" for job_id, node in self.node_runs.items()}


async def _live(c: Coordinator, me: Principal, detail: RunDetail) -> LiveRun:
    run = detail.run
    snapshot = await c.store.get_snapshot(run.snapshot_id)
    names = job_names(snapshot.workflow)
    siblings = await c.store.list_runs(RunFilter(work_order_id=run.work_order_id))
    now = datetime.now(UTC)
    workflow = {run.workflow_id: snapshot.workflow.name}
    chosen: list[tuple[KeychainChoice, str]] = []
    if detail.keychains:
        names_of = {i.id: i.name for i in await c.store.list_credentials(run.project_id)}
        chosen = [
            (k, names_of.get(k.credential_id or "", k.credential_id or ""))
            for k in detail.keychains
        ]
    return LiveRun(
        run=run,
        workflow=snapshot.workflow,
        version=snapshot.version,
        css=state_class(run.state.value),
        final=run.state in FINAL_RUN_STATES,
        duration=duration(run.started_at, run.finished_at, now),
        starting_node=names.get(run.starting_node_id, run.starting_node_id),
        steps=timeline(detail.steps, names, run.started_at, run.finished_at, now),
        siblings=[run_row(r, workflow, now) for r in siblings.items],
        waiting_for=c.hub.waiting_for(run),
        graph=workflow_graph(snapshot.workflow),
        node_runs=node_runs(detail.steps),
        may_run=allowed(me, Permission.RUN, run.project_id),
        bodies=await may_read_bodies(c.store, me, run.project_id),
        keychains=chosen,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, me: Signed, error: str = "") -> Response:
    c = _c(request)
    try:
        await require_on(c.store, me, Permission.READ, "run", run_id)
        detail = await c.store.get_run(run_id)
    except NotFoundError:
        return page("missing.html", 404, what=f"run {run_id}", status=await status(c), me=me)
    live = await _live(c, me, detail)
    logs = await c.store.get_logs(run_id, limit=LOG_PAGE)
    return page(
        "run.html",
        section="runs",
        status=await status(c),
        error=error,
        live=live,
        lines=logs.items,
        next_cursor=logs.next_cursor or "",
        step_names=live.step_names,
        me=me,
    )


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(request: Request, run_id: str, me: Signed) -> Response:
    c = _c(request)
    await require_on(c.store, me, Permission.READ, "run", run_id)
    return fragment("_run_live.html", live=await _live(c, me, await c.store.get_run(run_id)))


@router.get("/runs/{run_id}/logs", response_class=HTMLResponse)
async def run_logs(request: Request, run_id: str, me: Signed, cursor: str = "") -> Response:
    """One page of log lines; ``X-Next-Cursor`` is the next page's cursor (empty at the end)."""
    c = _c(request)
    await require_on(c.store, me, Permission.READ, "run", run_id)
    logs = await c.store.get_logs(run_id, cursor=cursor or None, limit=LOG_PAGE)
    detail = await c.store.get_run(run_id)
    snapshot = await c.store.get_snapshot(detail.run.snapshot_id)
    names = job_names(snapshot.workflow)
    step_names = {step.id: names.get(step.job_id, step.job_id[:8]) for step in detail.steps}
    return fragment(
        "_log_lines.html",
        headers={"X-Next-Cursor": logs.next_cursor or ""},
        lines=logs.items,
        step_names=step_names,
    )


@router.get("/dataclips/{dataclip_id}", response_class=HTMLResponse)
async def dataclip(request: Request, dataclip_id: str, me: Signed) -> Response:
    """A dataclip as indented JSON, without credentials; opened on demand by the run page
    (its body takes the editor role, or a viewer's where the project allows it)."""
    store = _c(request).store
    try:
        await require_on(store, me, Permission.READ_BODIES, "dataclip", dataclip_id)
        clip = await store.get_dataclip(dataclip_id)
    except NotFoundError:
        return fragment("_dataclip.html", missing=True)
    text, cut = pretty_json(visible_dataclip(clip.body))
    request_text = pretty_json(clip.request)[0] if clip.request else ""
    return fragment(
        "_dataclip.html", missing=False, clip=clip, text=text, cut=cut, request_text=request_text
    )


@router.post("/runs/{run_id}/retry")
async def retry(
    request: Request,
    run_id: str,
    me: Signed,
    step_id: Annotated[str, Form()] = "",
) -> Response:
    """A new run of the work order from ``step_id`` (empty: from the start)."""
    c = _c(request)
    back = f"{PREFIX}/runs/{run_id}"
    if not same_origin(request):
        return RedirectResponse(f"{back}?error={quote('Retry from this site only.')}", 303)
    try:
        await require_on(c.store, me, Permission.RUN, "run", run_id)
        by = audit.actor(request, me)
        new_run = await _retry(c, by, await c.store.get_run(run_id), step_id)
    except AccessError:
        raise  # answered by forms.forbidden
    except FulmenError as exc:
        return RedirectResponse(f"{back}?error={quote('Could not retry: ' + exc.message)}", 303)
    return RedirectResponse(f"{PREFIX}/runs/{new_run}", 303)


async def _retry(c: Coordinator, by: Actor, detail: RunDetail, step_id: str) -> str:
    """The same rerun as ``POST /api/steps/{id}/rerun`` (issue 8): a new run in the work
    order, recorded as a rerun, refused in the same transaction when its input was wiped."""
    if step_id and all(s.id != step_id for s in detail.steps):
        raise NotFoundError(f"run {detail.run.id[:8]} has no step {step_id}")
    request = (
        RerunRequest(step_id=step_id, options=c.run_options())
        if step_id
        else RerunRequest(work_order_id=detail.run.work_order_id, options=c.run_options())
    )
    made = await operations.rerun(c, by, request, "retry")
    return made.run_id
