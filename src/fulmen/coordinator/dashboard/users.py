"""``/ui/users``: the instance's users, for an instance admin: disable and enable them, make
and unmake instance admins (never the last active one), invite someone (the link is shown
once, on the page that answers the form), and the invitations still open, to revoke.

Changes go through the REST API's own function (``api.users.change_user``) and invitations
through coordinator/invitations.py, as ``POST /api/invitations`` makes them: the same checks
and refusals. ``POST /ui/invitations`` is also where a project's admin invites someone to
their project, from its members page (members.py, the form in ``_invite.html``): the answer
to a form posted with ``back`` is a page of its own with the link, which leads back there.
A caller who may not do what a form asks gets forms.forbidden (every route is Guarded).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit, invitations
from fulmen.coordinator.access import STRENGTH, Principal, require_instance_admin
from fulmen.coordinator.api.schemas.users import InvitationIn
from fulmen.coordinator.api.users import change_user
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    Problem,
    blank_to_none,
    cross_site,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, safe_next
from fulmen.errors import AccessError, FulmenError, InputError
from fulmen.store import Invitation, Project

__all__ = ["invite_form", "router"]

router = APIRouter(route_class=Guarded)

Field = Annotated[str, Form()]
#: What each button of a user's row does, as ``change_user``'s arguments.
ACTIONS: Final[dict[str, dict[str, bool]]] = {
    "disable": {"disabled": True},
    "enable": {"disabled": False},
    "make_admin": {"instance_admin": True},
    "unmake_admin": {"instance_admin": False},
    "remove_second_factor": {"second_factor": False},
}
DONE: Final = {
    "disable": "User disabled: their sessions ended, and their tokens are refused.",
    "enable": "User enabled: they can sign in again.",
    "make_admin": "User made an instance admin.",
    "unmake_admin": "User is no longer an instance admin.",
    "remove_second_factor": "Second factor removed: they sign in with their password, then enrol.",
    "revoked": "Invitation revoked: its link opens nothing now.",
}
INVITE_FIELDS: Final = ("email", "project_id", "role", "instance_admin")


def invite_form(
    projects: list[Project], roles: list[str], *, anything: bool, back: str | None = None
) -> dict[str, object]:
    """What ``_invite.html`` shows: the projects and roles offered (weakest first), whether
    an invitation to no project and of an instance admin may be made (``anything``: an
    instance admin's), and where a project's page wants its answer to lead back to."""
    return {"projects": projects, "roles": roles, "anything": anything, "back": back}


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    *,
    made: tuple[str, Invitation] | None = None,
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    """The users page (an instance admin's: the caller checked it)."""
    c: Coordinator = request.app.state.coordinator
    projects = [project for project, _ in await catalog(c.store, me)]
    listed = await c.store.list_users()
    roles = [role.value for role in STRENGTH]
    return page(
        "users.html",
        problem.status if problem else 201 if made else 200,
        section="users",
        status=await status(c),
        me=me,
        users=listed,
        emails={user.id: user.email for user in listed},
        invitations=await c.store.list_invitations(),
        names={project.id: project.name for project in projects},
        invite=invite_form(projects, roles, anything=True),
        made=made,
        problem=problem,
        entered=entered or {},
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request, me: Signed) -> Response:
    require_instance_admin(me, "managing users")
    return await _page(request, me)


@router.post("/users/{user_id}", response_class=HTMLResponse)
async def change(request: Request, user_id: str, me: Signed, action: Field = "") -> Response:
    """One button of a user's row: ``action`` is one of :data:`ACTIONS`."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    require_instance_admin(me, "managing users")
    try:
        if action not in ACTIONS:
            raise InputError(f"{action!r} is not something done to a user", code="bad_action")
        await change_user(c, me, audit.actor(request, me), user_id, **ACTIONS[action])
    except FulmenError as error:
        return await _page(request, me, problem_of(f"user:{user_id}", error))
    return RedirectResponse(f"{PREFIX}/users?done={action}#user-{user_id}", 303)


@router.post("/invitations", response_class=HTMLResponse)
async def invite(
    request: Request,
    me: Signed,
    email: Field = "",
    project_id: Field = "",
    role: Field = "",
    instance_admin: Field = "",
    back: Field = "",
) -> Response:
    """``instance_admin`` is a checkbox (present: on); ``back``: posted from a project's
    page, whose answer leads back there (else the users page answers)."""
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
        by = audit.actor(request, me)
        secret, invitation = await invitations.invite(c, me, by, given.to_store())
        made = (invitations.link(str(request.base_url), secret), invitation)
    except AccessError:
        raise  # answered by forms.forbidden
    except (ValidationError, FulmenError) as error:
        problem = problem_of("invite", error, INVITE_FIELDS)
    if back or not me.instance_admin:
        code = problem.status if problem else 201
        return page("invited.html", code, made=made, problem=problem, back=safe_next(back))
    return await _page(request, me, problem, made=made, entered=entered)


@router.post("/invitations/{invitation_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, invitation_id: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        await invitations.revoke(c, me, audit.actor(request, me), invitation_id)
    except AccessError:
        raise  # answered by forms.forbidden
    except FulmenError as error:
        return await _page(request, me, problem_of(f"revoke:{invitation_id}", error))
    return RedirectResponse(f"{PREFIX}/users?done=revoked", 303)
