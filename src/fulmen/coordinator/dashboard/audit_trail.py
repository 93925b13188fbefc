"""The audit trail in the dashboard (issue 18): ``/ui/projects/<id>/audit`` (a project's
records, for its admins and owners) and ``/ui/audit`` (every record, sign-ins included, for
instance admins), filtered by actor, action, target and time (the REST API's filters:
api/audit_trail.py's AuditQuery, kept in the URL so that a search is a link), newest first, with
a change's diff shown line by line (added and removed lines marked, every line escaped), and
links to export what the filters match (``.jsonl``, ``.csv``: the REST API's exports).

A refusal (a role too weak) is answered and recorded as every page's is (forms.Guarded).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fulmen.coordinator import access, diffs
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.audit_trail import AuditQuery, export
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.find import refusal
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import Signed
from fulmen.errors import InputError, NotFoundError
from fulmen.store import AuditFilter, AuditRecord, Project

__all__ = ["ACTIONS", "PAGE", "router"]

router = APIRouter(route_class=Guarded)

#: Records on a page.
PAGE: Final = 50
#: What the action filter suggests (any code or noun may be typed).
ACTIONS: Final = (
    "workflow",
    "workflow.updated",
    "credential",
    "keychain",
    "project",
    "trigger",
    "webhook_auth_method",
    "token",
    "member",
    "run",
    "work_order",
    "sign_in",
    "sign_in.failed",
    "access.refused",
)


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


@router.get("/audit", response_class=HTMLResponse)
async def instance_trail(request: Request, me: Signed, cursor: str | None = None) -> Response:
    access.require_instance_admin(me, "the instance's audit trail")
    return await _trail(request, None, cursor)


@router.get("/projects/{project_id}/audit", response_class=HTMLResponse)
async def project_trail(
    request: Request, project_id: str, me: Signed, cursor: str | None = None
) -> Response:
    c = _c(request)
    access.require(me, Permission.MANAGE, project_id)
    try:
        project = await c.store.get_project(project_id)
    except NotFoundError:
        return await _missing(c, project_id)
    return await _trail(request, project, cursor)


@router.get("/audit.{kind}")
async def instance_export(request: Request, kind: str, me: Signed) -> Response:
    access.require_instance_admin(me, "the instance's audit trail")
    return await _export(request, None, kind, "instance")


@router.get("/projects/{project_id}/audit.{kind}")
async def project_export(request: Request, project_id: str, kind: str, me: Signed) -> Response:
    access.require(me, Permission.MANAGE, project_id)
    try:
        await _c(request).store.get_project(project_id)
    except NotFoundError:
        return await _missing(_c(request), project_id)
    return await _export(request, project_id, kind, f"project-{project_id}")


async def _export(request: Request, project_id: str | None, kind: str, scope: str) -> Response:
    if kind not in ("jsonl", "csv"):
        return await _missing(_c(request), None, f"export audit.{kind} (jsonl or csv)")
    try:
        where = _where(request, project_id)
    except InputError as error:
        return refusal(error)
    return export(_c(request).store, where, "csv" if kind == "csv" else "jsonl", scope)


def _where(request: Request, project_id: str | None) -> AuditFilter:
    """The filters of the request's URL (the instance's page also takes a project)."""
    query = AuditQuery.read(request.query_params)
    chosen = project_id or request.query_params.get("project_id", "").strip() or None
    return query.filter(chosen)


async def _trail(request: Request, project: Project | None, cursor: str | None) -> Response:
    c = _c(request)
    context: dict[str, Any] = {
        "section": "audit",
        "status": await status(c),
        "project": project,
        "actions": ACTIONS,
        "paged": cursor is not None,
    }
    base = f"projects/{project.id}/audit" if project else "audit"
    chosen = "" if project else request.query_params.get("project_id", "").strip()
    if project is None:
        context["projects"] = await _projects(c)
    try:
        query = AuditQuery.read(request.query_params)
        listed = await c.store.list_audit(
            query.filter(project.id if project else chosen or None), cursor=cursor, limit=PAGE
        )
    except InputError as error:
        empty = AuditQuery()
        context |= {"q": empty, "records": [], "next": None, "error": error, "base": base}
        return page("audit.html", 400, chosen=chosen, query="", **context)
    extra = {"project_id": chosen} if chosen else {}
    return page(
        "audit.html",
        q=query,
        query=query.url_query(**extra),
        chosen=chosen,
        base=base,
        records=[_shown(record) for record in listed.items],
        next=query.url_query(cursor=listed.next_cursor, **extra) if listed.next_cursor else None,
        error=None,
        **context,
    )


def _shown(record: AuditRecord) -> dict[str, Any]:
    """What a record's entry shows: its diff when it has a before and an after, else the one
    document it has, as YAML."""
    t = record.target
    lines = diffs.lines(record.before, record.after, name=f"{t.type} {t.name or t.id}")
    single = record.after if record.before is None else record.before
    return {
        "record": record,
        "diff": lines,
        "document": diffs.as_text(single) if lines is None and single is not None else None,
        "detail": record.detail or {},
    }


async def _projects(c: Coordinator) -> list[Project]:
    projects: list[Project] = []
    cursor = None
    while True:
        listed = await c.store.list_projects(cursor=cursor, limit=100)
        projects.extend(listed.items)
        if (cursor := listed.next_cursor) is None:
            return projects


async def _missing(c: Coordinator, project_id: str | None, what: str = "") -> HTMLResponse:
    return page("missing.html", 404, what=what or f"project {project_id}", status=await status(c))
