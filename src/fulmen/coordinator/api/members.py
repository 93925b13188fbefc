"""A project's members (issue 18): who they are and their roles; adding an existing user by
e-mail, changing a role, taking someone out.

Admins manage members; the owner role is given and taken by owners only, so an admin can
neither make an owner nor demote or remove one (access.require_grant); the store keeps the
last owner (ConflictError ``last_owner``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, require_grant
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.api.schemas.teams import MemberDoc, MemberIn, RoleIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_project
from fulmen.errors import ConflictError, NotFoundError
from fulmen.store import Actor, Member, Role, Store

__all__ = ["add", "remove", "router", "set_role"]

router = APIRouter(tags=["members"])


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


@router.get("/projects/{project_id}/members")
async def list_members(request: Request, me: Caller, project_id: PathId) -> PageDoc[MemberDoc]:
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    return PageDoc(items=[MemberDoc.of(m) for m in await store.list_members(project_id)])


@router.post("/projects/{project_id}/members", status_code=201)
async def add_member(
    request: Request, me: Caller, project_id: PathId, member: MemberIn
) -> MemberDoc:
    """An existing user, by e-mail (404 if no user has it; 409 if already a member)."""
    by = audit.actor(request, me)
    made = await add(_store(request), me, by, project_id, member.email, Role(member.role))
    return MemberDoc.of(made)


@router.put("/projects/{project_id}/members/{user_id}")
async def put_member(
    request: Request, me: Caller, project_id: PathId, user_id: PathId, body: RoleIn
) -> MemberDoc:
    """The user's role in the project, whether they were a member or not."""
    by = audit.actor(request, me)
    return MemberDoc.of(
        await set_role(_store(request), me, by, project_id, user_id, Role(body.role))
    )


@router.delete("/projects/{project_id}/members/{user_id}", status_code=204)
async def delete_member(
    request: Request, me: Caller, project_id: PathId, user_id: PathId
) -> Response:
    await remove(_store(request), me, audit.actor(request, me), project_id, user_id)
    return Response(status_code=204)


async def add(
    store: Store, me: Caller, by: Actor, project_id: str, email: str, role: Role
) -> Member:
    """Add the user with ``email``: the one way to, for the API and the dashboard.

    Raises:
        AccessError, NotFoundError (no user has it), ConflictError (a member already).
    """
    await require_project(store, me, Permission.MEMBERS, project_id)
    user = await store.find_user(email)
    if user is None:
        raise NotFoundError(
            f"no user has the e-mail {email.strip()}: they need an account first",
            field="email",
        )
    if user.id in {m.user_id for m in await store.list_members(project_id)}:
        raise ConflictError(
            f"{user.email} is a member of the project already: change their role instead",
            field="email",
        )
    require_grant(me, role, project_id)
    async with store.together():
        made = await store.put_member(project_id, user.id, role)
        await audit.member(store, by, project_id, user.id, user.email, before=None, after=role)
    return made


async def set_role(
    store: Store, me: Caller, by: Actor, project_id: str, user_id: str, role: Role
) -> Member:
    """Give ``user_id`` the role ``role``, checked against the caller's own."""
    await require_project(store, me, Permission.MEMBERS, project_id)
    current = await _current(store, project_id, user_id)
    require_grant(me, role, project_id, current=current)
    async with store.together():
        made = await store.put_member(project_id, user_id, role)
        await audit.member(store, by, project_id, user_id, made.email, before=current, after=role)
    return made


async def remove(store: Store, me: Caller, by: Actor, project_id: str, user_id: str) -> None:
    await require_project(store, me, Permission.MEMBERS, project_id)
    current = await store.get_member(project_id, user_id)
    require_grant(me, current.role, project_id)
    async with store.together():
        await store.remove_member(project_id, user_id)
        await audit.member(
            store, by, project_id, user_id, current.email, before=current.role, after=None
        )


async def _current(store: Store, project_id: str, user_id: str) -> Role | None:
    try:
        return (await store.get_member(project_id, user_id)).role
    except NotFoundError:
        return None
