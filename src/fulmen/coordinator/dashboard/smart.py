"""``/ui/smart-workers``: the runner's smart workers (issue 17), over its HTTP API
(coordinator/runner_client.py): each with its triggers (a schedule, HTTP, events), its next
scheduled time, its state and last run; one worker's page adds its last runs and its logs.
Run now, restart and delete (confirmed by a box to tick) are POSTs refused from another site
(session.same_origin), each answered by a redirect back with a notice.

No runner configured: the page says how to set one (200). The runner unreachable, or refusing
the coordinator's token: the page says so, 502, never a 500.

The runner's workers belong to no project: they are the instance's, so the pages are for
instance admins only (403 for everyone else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator.access import Principal, require_instance_admin
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, cross_site, refusal
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.runner_client import NOT_CONFIGURED, RunnerClient
from fulmen.errors import RunnerError

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

BASE: Final = f"{PREFIX}/smart-workers"
DONE: Final = {
    "ran": "Run started: it appears under Last runs when it has begun.",
    "restarted": "Restart requested.",
    "deleted": "Worker deleted.",
}
#: The status a page answers for the runner's problem: any not listed is the runner's (502).
_STATUS: Final = {NOT_CONFIGURED: 200, "not_found": 404, "not_confirmed": 400}


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class SmartWorker:
    """What the pages show of the runner's summary of one worker."""

    id: str
    name: str
    type: str
    state: str
    triggers: tuple[Trigger, ...]
    next_run: datetime | None
    last_run: datetime | None
    http_url: str | None

    @classmethod
    def of(cls, summary: dict[str, Any], runner_url: str) -> SmartWorker:
        worker_id = str(summary.get("id", ""))
        triggers: list[Trigger] = []
        if summary.get("schedule"):
            zone = summary.get("timezone") or "UTC"
            triggers.append(Trigger("schedule", f"{summary['schedule']} ({zone})"))
        http = "fetch" in (summary.get("handlers") or ())
        url = f"{runner_url}/workers/{quote(worker_id, safe='')}/fetch" if http else None
        if url:
            triggers.append(Trigger("HTTP", url))
        if summary.get("events"):
            triggers.append(Trigger("events", ", ".join(map(str, summary["events"]))))
        return cls(
            id=worker_id,
            name=str(summary.get("name") or worker_id),
            type=str(summary.get("type", "")),
            state=str(summary.get("state", "")),
            triggers=tuple(triggers),
            next_run=_iso(summary.get("next_run")),
            last_run=_iso(summary.get("last_run")),
            http_url=url,
        )


@dataclass(frozen=True, slots=True)
class SmartRun:
    id: str
    trigger: str
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str
    error: str | None


@dataclass(frozen=True, slots=True)
class LogLine:
    at: datetime | None
    stream: str
    line: str


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _require(me: Principal) -> None:
    require_instance_admin(me, "the runner's smart workers belong to no project: managing them")


def _client(request: Request) -> RunnerClient:
    c: Coordinator = request.app.state.coordinator
    return RunnerClient.from_settings(c.settings)


async def _failed(request: Request, error: RunnerError, **context: Any) -> HTMLResponse:
    """The list page with the runner's problem (its status from :data:`_STATUS`)."""
    c: Coordinator = request.app.state.coordinator
    return page(
        "smart_workers.html",
        _STATUS.get(error.code, 502),
        section="smart",
        status=await status(c),
        workers=[],
        problem=error,
        not_configured=error.code == NOT_CONFIGURED,
        notice=None,
        **context,
    )


@router.get("/smart-workers", response_class=HTMLResponse)
async def smart_workers(request: Request, me: Signed) -> Response:
    _require(me)
    client = _client(request)
    try:
        listed = await client.workers()
    except RunnerError as error:
        return await _failed(request, error)
    c: Coordinator = request.app.state.coordinator
    return page(
        "smart_workers.html",
        section="smart",
        status=await status(c),
        me=me,
        workers=[SmartWorker.of(w, client.url or "") for w in listed],
        runner_url=client.url,
        problem=None,
        not_configured=False,
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/smart-workers/{ref}", response_class=HTMLResponse)
async def smart_worker(request: Request, ref: str, me: Signed) -> Response:
    _require(me)
    client = _client(request)
    try:
        summary = await client.worker(ref)
        runs = await client.runs(ref)
        logs = await client.logs(ref)
    except RunnerError as error:
        return await _failed(request, error)
    c: Coordinator = request.app.state.coordinator
    return page(
        "smart_worker.html",
        section="smart",
        status=await status(c),
        me=me,
        worker=SmartWorker.of(summary, client.url or ""),
        runs=[
            SmartRun(
                str(r.get("id", "")),
                str(r.get("trigger", "")),
                _iso(r.get("started_at")),
                _iso(r.get("ended_at")),
                str(r.get("outcome", "")),
                str(r["error"]) if r.get("error") else None,
            )
            for r in runs
        ],
        logs=[
            LogLine(_iso(r.get("ts")), str(r.get("stream", "")), str(r.get("line", "")))
            for r in logs
        ],
        problem=None,
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/smart-workers/{ref}/run", response_class=HTMLResponse)
async def run_now(request: Request, ref: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    _require(me)
    try:
        await _client(request).run_now(ref)
    except RunnerError as error:
        return await _failed(request, error)
    return RedirectResponse(f"{BASE}/{quote(ref, safe='')}?done=ran", 303)


@router.post("/smart-workers/{ref}/restart", response_class=HTMLResponse)
async def restart(request: Request, ref: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    _require(me)
    try:
        await _client(request).restart(ref)
    except RunnerError as error:
        return await _failed(request, error)
    return RedirectResponse(f"{BASE}/{quote(ref, safe='')}?done=restarted", 303)


@router.post("/smart-workers/{ref}/delete", response_class=HTMLResponse)
async def delete(
    request: Request, ref: str, me: Signed, confirm: Annotated[str, Form()] = ""
) -> Response:
    """Deleting needs the form's box ticked (``confirm``); without it nothing is deleted."""
    if cross_site(request):
        return refusal()
    _require(me)
    if confirm != "yes":
        error = RunnerError("Tick the box to confirm the deletion.", code="not_confirmed")
        return await _failed(request, error)
    try:
        await _client(request).delete(ref)
    except RunnerError as error:
        return await _failed(request, error)
    return RedirectResponse(f"{BASE}?done=deleted", 303)
