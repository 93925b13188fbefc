"""``/ui/users``: the instance's users, for an instance admin: disable and enable them, make
and unmake instance admins (never the last active one), invite someone (the link is shown
once, on the page that answers the form), and the invitations still open, to revoke.

Changes go through the REST API's own function (``api.users.change_user``) and invitations
through coordinator/invitations.py, as ``POST /api/invitations`` makes them: the same checks
and refusals. ``POST /ui/invitations`` is also where a project's admin invites someone to
their project (the form in ``_invite.html``, for a project's members page): for them the
answer is a page of its own, as the users page is an instance admin's.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import invitations
from fulmen.coordinator.access import Principal, require_instance_admin
from fulmen.coordinator.api.schemas.users import InvitationIn
from fulmen.coordinator.api.users import change_user
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Problem,
    blank_to_none,
    cross_site,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, safe_next, viewer
from fulmen.errors import AccessError, FulmenError, InputError
from fulmen.store import Invitation

__all__ = ["router"]

router = APIRouter()

Viewer = Annotated[Principal, Depends(viewer)]
Field = Annotated[str, Form()]
#: What each button of a user's row does, as ``change_user``'s arguments.
ACTIONS: Final[dict[str, dict[str, bool]]] = {
    "disable": {"disabled": True},
    "enable": {"disabled": False},
    "make_admin": {"instance_admin": True},
    "unmake_admin": {"instance_admin": False},
}
DONE: Final = {
    "disable": "User disabled: their sessions ended, and their tokens are refused.",
    "enable": "User enabled: they can sign in again.",
    "make_admin": "User made an instance admin.",
    "unmake_admin": "User is no longer an instance admin.",
    "revoked": "Invitation revoked: its link opens nothing now.",
}
INVITE_FIELDS: Final = ("email", "project_id", "role", "instance_admin")


def forbidden(error: AccessError) -> HTMLResponse:
    """403: the page says what it takes."""
    return page("forbidden.html", 403, message=error.message)


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    made: tuple[str, Invitation] | None = None,
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    projects = [project for project, _ in await catalog(c.store)]
    listed = await c.store.list_users()
    return page(
        "users.html",
        problem.status if problem else 201 if made else 200,
        section="users",
        status=await status(c),
        me=me,
        users=listed,
        emails={user.id: user.email for user in listed},
        invitations=await c.store.list_invitations(),
        projects=projects,
        names={project.id: project.name for project in projects},
        made=made,
        problem=problem,
        entered=entered or {},
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request, me: Viewer) -> Response:
    try:
        require_instance_admin(me, "Managing users")
    except AccessError as error:
        return forbidden(error)
    return await _page(request, me)


@router.post("/users/{user_id}", response_class=HTMLResponse)
async def change(request: Request, user_id: str, me: Viewer, action: Field = "") -> Response:
    """One button of a user's row: ``action`` is one of :data:`ACTIONS`."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        require_instance_admin(me, "Managing users")
    except AccessError as error:
        return forbidden(error)
    try:
        if action not in ACTIONS:
            raise InputError(f"{action!r} is not something done to a user", code="bad_action")
        await change_user(c, me, user_id, **ACTIONS[action])
    except FulmenError as error:
        return await _page(request, me, problem_of(f"user:{user_id}", error))
    return RedirectResponse(f"{PREFIX}/users?done={action}#user-{user_id}", 303)


@router.post("/invitations", response_class=HTMLResponse)
async def invite(
    request: Request,
    me: Viewer,
    email: Field = "",
    project_id: Field = "",
    role: Field = "",
    instance_admin: Field = "",
    back: Field = "",
) -> Response:
    """``instance_admin`` is a checkbox (present: on); ``back`` is where a project admin's
    answer page links back to."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    entered = {"email": email, "project_id": project_id, "role": role}
    made: tuple[str, Invitation] | None = None
    problem: Problem | None = None
    try:
        given = InvitationIn.model_validate(
            blank_to_none(entered) | {"instance_admin": bool(instance_admin)}
        )
        secret, invitation = await invitations.invite(c, me, given.to_store())
        made = (invitations.link(str(request.base_url), secret), invitation)
    except (ValidationError, FulmenError) as error:
        problem = problem_of("invite", error, INVITE_FIELDS)
    if me.instance_admin:
        return await _page(request, me, problem, made=made, entered=entered)
    return _invited(made, problem, safe_next(back))


def _invited(
    made: tuple[str, Invitation] | None, problem: Problem | None, back: str
) -> HTMLResponse:
    """A project admin's answer: the link, or why there is none."""
    code = problem.status if problem else 201
    return page("invited.html", code, made=made, problem=problem, back=back)


@router.post("/invitations/{invitation_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, invitation_id: str, me: Viewer) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        require_instance_admin(me, "Revoking invitations")
        await c.store.delete_invitation(invitation_id)
    except AccessError as error:
        return forbidden(error)
    except FulmenError as error:
        return await _page(request, me, problem_of(f"revoke:{invitation_id}", error))
    return RedirectResponse(f"{PREFIX}/users?done=revoked", 303)
