"""``/ui/tokens``: the caller's personal API tokens (every token, for an instance admin) and,
for each project the caller administers, its service tokens; with when each was last used.
Make one (shown once, to copy), revoke one.

Tokens are made and revoked by the REST API's own functions (api/tokens.py), with its checks
and its audit records: a personal token acts with its user's roles; a service token acts in
its project only, with a role no stronger than its maker's. A revoked token gets 401 from the
API, and the dashboard sessions signed in with it end (session.py). The new token is on the
page that answers the form, never in a URL, and never shown again.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import STRENGTH, Permission, Principal, allowed
from fulmen.coordinator.api import tokens as api_tokens
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    Problem,
    cross_site,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.errors import AccessError, FulmenError, InputError
from fulmen.store import ApiToken, Role

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

DONE: Final = {"revoked": "Token revoked: it is refused from now on."}


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    made: tuple[str, ApiToken] | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    personal = [] if me.kind == "service" else await api_tokens.personal_tokens(c.store, me)
    services: list[dict[str, Any]] = []
    for project, _ in await catalog(c.store, me):
        if allowed(me, Permission.MANAGE, project.id):
            own = me.role_in(project.id)
            assert own is not None  # allowed to manage: a role there
            services.append(
                {
                    "project": project,
                    "tokens": await c.store.list_api_tokens(project_id=project.id),
                    "roles": [r for r in STRENGTH if STRENGTH.index(r) <= STRENGTH.index(own)],
                }
            )
    return page(
        "tokens.html",
        problem.status if problem else 201 if made else 200,
        section="tokens",
        status=await status(c),
        me=me,
        tokens=personal,
        services=services,
        made=made,
        problem=problem,
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(request: Request, me: Signed) -> Response:
    return await _page(request, me)


@router.post("/tokens", response_class=HTMLResponse)
async def create(request: Request, me: Signed, name: Annotated[str, Form()] = "") -> Response:
    """A personal token of the signed-in user (a service token's session makes none)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        made = await api_tokens.make_personal(c.store, me, audit.actor(request, me), name)
    except AccessError:
        raise  # answered by forms.forbidden
    except FulmenError as error:
        return await _page(request, me, problem_of("new", error, ("name",)))
    return await _page(request, me, made=made)


@router.post("/tokens/projects/{project_id}", response_class=HTMLResponse)
async def create_service(
    request: Request,
    project_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    """A service token of the project, with a role no stronger than the caller's."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    form = f"service:{project_id}"
    try:
        if role not in {r.value for r in Role}:
            raise InputError("choose the token's role", code="invalid_form", field="role")
        made = await api_tokens.make_service(
            c.store, me, audit.actor(request, me), project_id, name, Role(role)
        )
    except AccessError:
        raise
    except FulmenError as error:
        return await _page(request, me, problem_of(form, error, ("name", "role")))
    return await _page(request, me, made=made)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, token_id: str, me: Signed) -> Response:
    """A personal token (the caller's own; anyone's for an instance admin) or a service token
    (by its project's admins). Revoking the token this session signed in with signs it out
    (the sign-in page)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        token = await c.store.get_api_token(token_id)
        by = audit.actor(request, me)
        if token.project_id is not None:
            await api_tokens.revoke_service(c.store, me, by, token.project_id, token_id)
        else:
            await api_tokens.revoke_personal(c.store, me, by, token_id)
    except AccessError:
        raise
    except FulmenError as error:
        return await _page(request, me, problem_of(f"revoke:{token_id}", error))
    return RedirectResponse(f"{PREFIX}/tokens?done=revoked", 303)
