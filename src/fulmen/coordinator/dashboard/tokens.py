"""``/ui/tokens``: the REST API's tokens, with when each was last used; make one (shown once,
to copy), revoke one.

Tokens are made by ``api.auth.issue``, as ``fulmen server token create`` makes them, and
revoked by ``api.auth.revoke`` (each with its audit record): the token then gets 401 from
the API, and the dashboard sessions signed in with it end (session.py). The new token is on
the page that answers the form, never in a URL, and never shown again.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Principal
from fulmen.coordinator.api import auth
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, viewer
from fulmen.errors import FulmenError
from fulmen.store import ApiToken

__all__ = ["router"]

router = APIRouter()

Viewer = Annotated[Principal, Depends(viewer)]
DONE: Final = {"revoked": "Token revoked: it is refused from now on."}


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    made: tuple[str, ApiToken] | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    return page(
        "tokens.html",
        problem.status if problem else 201 if made else 200,
        section="tokens",
        status=await status(c),
        tokens=await c.store.list_api_tokens(),
        me=me,
        made=made,
        problem=problem,
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/tokens", response_class=HTMLResponse)
async def tokens(request: Request, me: Viewer) -> Response:
    return await _page(request, me)


@router.post("/tokens", response_class=HTMLResponse)
async def create(request: Request, me: Viewer, name: Annotated[str, Form()] = "") -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        made = await auth.issue(c.store, audit.actor(request, me), name)
    except FulmenError as error:
        return await _page(request, me, problem_of("new", error, ("name",)))
    return await _page(request, me, made=made)


@router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, token_id: str, me: Viewer) -> Response:
    """Revoking the token this session signed in with signs it out (the sign-in page)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        await auth.revoke(c.store, audit.actor(request, me), token_id)
    except FulmenError as error:
        return await _page(request, me, problem_of(f"revoke:{token_id}", error))
    return RedirectResponse(f"{PREFIX}/tokens?done=revoked", 303)
