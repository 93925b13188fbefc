"""The dashboard's list pages: workflows with their triggers, runs (filtered, updated live by
the page's script re-reading ``/ui/runs/rows`` when ``/ui/events`` says runs changed), the
header's queue and worker figures, and the sign-in page.

Signing in (issue 18) is as a user, with an e-mail address and a password (coordinator/
sign_in.py: rate-limited per account and address); a user with a second factor goes on to
``/ui/login/mfa``. The page takes an API token only while no user exists (the token ``fulmen
up`` wrote, before the first admin is made): from then on a personal token is for the REST
API, and the sign-in page refuses one, saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from math import ceil
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fulmen.coordinator import audit, principals
from fulmen.coordinator.access import Permission, Principal, allowed
from fulmen.coordinator.api import status_of
from fulmen.coordinator.api.auth import parse, verify
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard import sso
from fulmen.coordinator.dashboard.filters import STATUS_FILTERS, RunQuery
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.render import fragment, page
from fulmen.coordinator.dashboard.session import (
    PREFIX,
    Signed,
    safe_next,
    same_origin,
    sign_out,
    signed_in,
    start,
)
from fulmen.coordinator.dashboard.views import run_row
from fulmen.coordinator.guard import scope_of
from fulmen.coordinator.sign_in import check_password, tokens_may_sign_in
from fulmen.errors import InputError, SignInError
from fulmen.store import Project, RunFilter, Store, StoredWorkflow

__all__ = ["STATUS_FILTERS", "router", "status"]

router = APIRouter(route_class=Guarded)

RUNS_PAGE: Final = 50


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


async def status(c: Coordinator) -> dict[str, Any]:
    """The header's figures: runs waiting in the queues, and connected workers."""
    depth = await c.store.queue_depth()
    return {"queued": sum(depth.values()), "queues": depth, "workers": c.hub.connected}


async def catalog(store: Store, me: Principal) -> list[tuple[Project, list[StoredWorkflow]]]:
    """The projects of ``me`` (every project, for an instance admin) with their workflows (a
    self-hosted coordinator has tens, not thousands)."""
    out: list[tuple[Project, list[StoredWorkflow]]] = []
    ids = None if me.sees_all_projects() else me.roles.keys()
    cursor = None
    while True:
        projects = await store.list_projects(cursor=cursor, limit=100, ids=ids)
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


async def _login_page(
    request: Request,
    status_code: int = 200,
    *,
    next: str,
    error: str | None = None,
    email: str = "",
) -> HTMLResponse:
    """The sign-in page: a token's form while no user exists, else e-mail and password; and
    single sign-on's link when a provider is set up (sso.button)."""
    return page(
        "login.html",
        status_code,
        next=next,
        error=error,
        email=email,
        by_token=await tokens_may_sign_in(_c(request).store),
        sso=sso.button(request),
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse(safe_next(next), 303)
    return await _login_page(request, next=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    next: Annotated[str, Form()] = PREFIX,
    token: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """A password sign-in (sign_in.py: rate-limited, one refusal for a wrong address or
    password; each attempt in the audit trail); with a second factor the session waits at
    ``/ui/login/mfa``. While no user exists, an API token's sign-in instead."""
    target = safe_next(next)
    c = _c(request)
    by_token = await tokens_may_sign_in(c.store)
    if not same_origin(request):
        who, how = (_token_label(token), "token") if by_token else (email.strip(), "password")
        await audit.sign_in(request, who, "failed", reason="cross_site", method=how)
        return await _login_page(request, 403, next=target, error="Sign in from this site.")
    if by_token:
        return await _token_sign_in(request, token, target)
    if token and not email:
        await audit.sign_in(request, _token_label(token), "failed", reason="token_refused")
        message = "Sign in with your e-mail address and password: an API token is for the REST API."
        return await _login_page(request, 401, next=target, error=message)
    try:
        user = await check_password(c, email, password, audit.address_of(request))
    except SignInError as refused:
        answer = await _login_page(
            request, status_of(refused), next=target, error=refused.message, email=email
        )
        if refused.retry_at is not None:
            wait = (refused.retry_at - c.clock.now()).total_seconds()
            answer.headers["Retry-After"] = str(max(1, ceil(wait)))
        return answer
    if user.totp_enabled:  # the second factor's page (second_factor.py) finishes the sign-in
        response = RedirectResponse(f"{PREFIX}/login/mfa?next={quote(target)}", 303)
        await start(response, request, user_id=user.id, stage="mfa")
        return response
    response = RedirectResponse(target, 303)
    await start(response, request, user_id=user.id)
    return response


async def _token_sign_in(request: Request, token: str, target: str) -> Response:
    """Before any user exists: an API token's sign-in, recorded in the audit trail (the
    token's id at most, never the token)."""
    who = _token_label(token)
    c = _c(request)
    stored = await verify(c.store, token.strip(), what="dashboard sign-in")
    principal = None if stored is None else await principals.of_token(c.store, stored)
    if stored is None or principal is None:
        await audit.sign_in(request, who, "failed", reason="bad_token")
        return await _login_page(request, 401, next=target, error="That token is not valid.")
    response = RedirectResponse(target, 303)
    await start(response, request, token_id=stored.id)
    await audit.sign_in(request, who, "succeeded", principal=principal)
    return response


def _token_label(token: str) -> str:
    """How a sign-in with ``token`` is named in the audit trail: the token's id, which is no
    secret (it is in the token list), never the token."""
    parts = parse(token.strip())
    return f"token {parts[0][:40]}" if parts else "a malformed token"


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", 303)
    if same_origin(request):
        await sign_out(response, request)
    return response


# -- workflows ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def workflows(request: Request, me: Signed) -> Response:
    """The caller's projects and their workflows."""
    c = _c(request)
    base = str(request.base_url).rstrip("/")
    projects = []
    for project, stored in await catalog(c.store, me):
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
        me=me,
    )


# -- runs --------------------------------------------------------------------------------------


async def _runs(
    c: Coordinator, me: Principal, query: RunQuery, cursor: str | None
) -> dict[str, Any]:
    """The runs of the caller's projects that ``query`` asks for (a text search looks in
    dataclip bodies only where the caller may read them)."""
    listed_workflows = [w for _, listed in await catalog(c.store, me) for w in listed]
    names = {w.workflow.id: w.workflow.name for w in listed_workflows}
    where = (await scope_of(c.store, me)).runs(query.filter())
    listed = await c.store.list_runs(where, cursor=cursor, limit=RUNS_PAGE)
    now = datetime.now(UTC)
    return {
        "rows": [run_row(run, names, now) for run in listed.items],
        "next_cursor": listed.next_cursor,
        "workflows": sorted(names.items(), key=lambda item: item[1]),
        "jobs": [
            (w.workflow.name, [(j.id, j.name or j.id[:8]) for j in w.workflow.jobs])
            for w in sorted(listed_workflows, key=lambda w: w.workflow.name)
            if not query.workflow_id or w.workflow.id == query.workflow_id
        ],
        "q": query,
        "workflow_id": query.workflow_id,
        "state": query.state,
        "filters": list(STATUS_FILTERS),
        "paged": cursor is not None,
        "me": me,
        "may_rerun": any(
            allowed(me, Permission.RUN, w.workflow.project_id) for w in listed_workflows
        ),
    }


Filter = Annotated[str | None, Query()]


@router.get("/runs", response_class=HTMLResponse)
async def runs(request: Request, me: Signed, cursor: Filter = None) -> Response:
    c = _c(request)
    try:
        query = RunQuery.read(request.query_params)
        listing = await _runs(c, me, query, cursor)
    except InputError as error:
        listing = await _runs(c, me, RunQuery(), None)
        listing |= {"rows": [], "next_cursor": None, "error": error, "paged": True}
        return page("runs.html", 400, section="runs", status=await status(c), **listing)
    return page(
        "runs.html", section="runs", status=await status(c), query=query.url_query(), **listing
    )


@router.get("/runs/rows", response_class=HTMLResponse)
async def run_rows(request: Request, me: Signed) -> Response:
    """The first page's rows, for the list's live update."""
    try:
        listing = await _runs(_c(request), me, RunQuery.read(request.query_params), None)
    except InputError as error:
        return fragment("_run_rows.html", rows=[], error=error)
    return fragment("_run_rows.html", **listing)


@router.get("/status")
async def status_json(request: Request, _: Signed) -> JSONResponse:
    return JSONResponse(await status(_c(request)), headers={"Cache-Control": "no-store"})
