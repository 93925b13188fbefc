"""access.require for what a request names, read from the store: a project by its id, or a
thing by its own (a workflow, a run, a dataclip...) through the project it belongs to; and
the projects a caller's listings are limited to.

The REST API's routes and the dashboard's pages call these before they read or change
anything, so both doors refuse alike. A thing that does not exist is a NotFoundError (404);
a thing in a project the caller is not a member of is refused as ``not_a_member`` (404 too),
naming the thing and not its project.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from fulmen.coordinator.access import Permission, Principal, allowed, require
from fulmen.errors import NotFoundError
from fulmen.store import Role, RunFilter, Store, ThingKind

__all__ = ["Scope", "may_read_bodies", "require_each", "require_on", "require_project", "scope_of"]

_PAGE: Final = 500


async def require_project(
    store: Store, principal: Principal, permission: Permission, project_id: str
) -> None:
    """Raise unless ``principal`` may do ``permission`` in ``project_id`` (for dataclip
    bodies, a viewer may where the project lets its viewers see them).

    Raises:
        AccessError: access.require's refusals.
    """
    await _require(store, principal, permission, project_id, None)


async def require_on(
    store: Store, principal: Principal, permission: Permission, kind: ThingKind, thing_id: str
) -> str:
    """Raise unless ``principal`` may do ``permission`` to the ``kind`` ``thing_id``; the id
    of its project.

    Raises:
        NotFoundError: there is no such thing.
        AccessError: access.require's refusals, naming the thing.
    """
    project_id = await store.project_of(kind, thing_id)
    what = f"{kind.replace('_', ' ')} {thing_id}"
    await _require(store, principal, permission, project_id, what)
    return project_id


async def require_each(
    store: Store,
    principal: Principal,
    permission: Permission,
    kind: ThingKind,
    thing_ids: Iterable[str],
) -> None:
    """:func:`require_on` for each of ``thing_ids`` that exists (a bulk request answers for
    the others one by one): one refused refuses them all, before anything is done."""
    for thing_id in thing_ids:
        try:
            await require_on(store, principal, permission, kind, thing_id)
        except NotFoundError:
            continue


async def may_read_bodies(store: Store, principal: Principal, project_id: str) -> bool:
    """Whether ``principal`` may read the dataclip bodies of ``project_id`` (what a page
    asks before it offers them)."""
    bodies = await _viewers_see_bodies(store, principal, Permission.READ_BODIES, project_id)
    return allowed(principal, Permission.READ_BODIES, project_id, viewers_see_bodies=bodies)


async def _require(
    store: Store,
    principal: Principal,
    permission: Permission,
    project_id: str,
    what: str | None,
) -> None:
    bodies = await _viewers_see_bodies(store, principal, permission, project_id)
    require(principal, permission, project_id, viewers_see_bodies=bodies, what=what)


async def _viewers_see_bodies(
    store: Store, principal: Principal, permission: Permission, project_id: str
) -> bool:
    """The project's setting, read only when it decides: a viewer asking for bodies."""
    if permission is Permission.READ_BODIES and principal.role_in(project_id) is Role.VIEWER:
        return (await store.get_project(project_id)).viewers_see_bodies
    return False


@dataclass(frozen=True, slots=True)
class Scope:
    """What a caller's listings show: the projects it is a member of (``None``: every
    project, for an instance admin), and of those, the ones whose dataclip bodies it may
    read (what a text search looks in)."""

    projects: frozenset[str] | None
    bodies: frozenset[str] | None

    def runs(self, where: RunFilter) -> RunFilter:
        """``where``, limited to the caller's projects."""
        return replace(where, project_ids=self.projects, body_projects=self.bodies)

    def shows(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


async def scope_of(store: Store, principal: Principal) -> Scope:
    if principal.sees_all_projects():
        return Scope(None, None)
    projects = frozenset(principal.roles)
    bodies = {p for p in projects if allowed(principal, Permission.READ_BODIES, p)}
    viewing = projects - bodies
    cursor = None
    while viewing:
        listed = await store.list_projects(ids=viewing, cursor=cursor, limit=_PAGE)
        bodies |= {p.id for p in listed.items if p.viewers_see_bodies}
        if (cursor := listed.next_cursor) is None:
            break
    return Scope(projects, frozenset(bodies))
