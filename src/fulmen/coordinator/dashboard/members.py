"""``/ui/projects/<id>/members``: a project's members and their roles; adding an existing user
by e-mail, changing a role, taking someone out (issue 18).

Every member sees who the others are; the forms are for those who manage members (admins and
owners), and offer only the roles the reader may give: an admin neither makes an owner nor
demotes or removes one. The changes go through the REST API's own functions
(api/members.py), with its checks and refusals; the store keeps the last owner.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import STRENGTH, Permission, Principal, allowed
from fulmen.coordinator.api import members as api_members
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.dashboard.users import invite_form
from fulmen.coordinator.guard import require_project
from fulmen.errors import AccessError, FulmenError, InputError
from fulmen.store import Role

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

DONE: Final = {
    "added": "Member added.",
    "changed": "Role changed.",
    "removed": "Member removed.",
}
FIELDS: Final = ("email", "role")


def _givable(me: Principal, project_id: str) -> list[Role]:
    """The roles ``me`` may give in the project, weakest first (none: not an admin)."""
    own = me.role_in(project_id)
    if own is None or not allowed(me, Permission.MEMBERS, project_id):
        return []
    return [r for r in STRENGTH if STRENGTH.index(r) <= STRENGTH.index(own)]


async def _page(
    request: Request,
    me: Principal,
    project_id: str,
    problem: Problem | None = None,
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.READ, project_id)
    project = await c.store.get_project(project_id)
    givable = _givable(me, project_id)
    return page(
        "members.html",
        problem.status if problem else 200,
        section="workflows",
        status=await status(c),
        me=me,
        project=project,
        members=await c.store.list_members(project_id),
        givable=givable,
        # issue 18: someone without an account is invited (users.py answers the form)
        invite=invite_form(
            [project],
            [role.value for role in givable],
            anything=False,
            back=f"{PREFIX}/projects/{project_id}/members",
        ),
        problem=problem,
        entered=entered or {},
        notice=DONE.get(request.query_params.get("done", "")),
    )


def _done(project_id: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/projects/{project_id}/members?done={what}", 303)


def _role(value: str) -> Role:
    if value not in {r.value for r in Role}:
        raise InputError("choose a role", code="invalid_form", field="role")
    return Role(value)


@router.get("/projects/{project_id}/members", response_class=HTMLResponse)
async def members(request: Request, project_id: str, me: Signed) -> Response:
    return await _page(request, me, project_id)


@router.post("/projects/{project_id}/members", response_class=HTMLResponse)
async def add(
    request: Request,
    project_id: str,
    me: Signed,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    """An existing user, by e-mail."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        await api_members.add(c.store, me, audit.actor(request, me), project_id, email, _role(role))
    except AccessError:
        raise  # answered by forms.forbidden
    except FulmenError as error:
        entered = {"email": email, "role": role}
        return await _page(request, me, project_id, problem_of("add", error, FIELDS), entered)
    return _done(project_id, "added")


@router.post("/projects/{project_id}/members/{user_id}/role", response_class=HTMLResponse)
async def change(
    request: Request,
    project_id: str,
    user_id: str,
    me: Signed,
    role: Annotated[str, Form()] = "",
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        await api_members.set_role(
            c.store, me, audit.actor(request, me), project_id, user_id, _role(role)
        )
    except AccessError:
        raise
    except FulmenError as error:
        return await _page(request, me, project_id, problem_of(f"member:{user_id}", error))
    return _done(project_id, "changed")


@router.post("/projects/{project_id}/members/{user_id}/remove", response_class=HTMLResponse)
async def remove(request: Request, project_id: str, user_id: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    try:
        await api_members.remove(c.store, me, audit.actor(request, me), project_id, user_id)
    except AccessError:
        raise
    except FulmenError as error:
        return await _page(request, me, project_id, problem_of(f"member:{user_id}", error))
    return _done(project_id, "removed")
