"""Who may do what (issue 18): roles per project, as a pure table.

Every API route and dashboard page asks :func:`require` before it reads or changes a
project's things, with the :class:`Principal` the request was authenticated as (a user
signed in to the dashboard, a user's personal API token, a project's service token, or an
operator token made before any user existed). One table, :data:`GRANTS`, says what each role
may do, so the routes name a permission and never a role, and the table of route × role in
the tests reads the same words.

The roles, as Lightning has them: **viewer** reads (runs, logs, workflows), but not dataclip
bodies unless the project allows it (``viewers_see_bodies``); **editor** changes workflows,
jobs, triggers and alert rules and starts, cancels and retries runs; **admin** also manages
credentials, webhook auth methods, the project's settings and alert channels, service tokens
and members (but not owners); **owner** also deletes the project and makes or unmakes owners.
An instance admin acts as an owner of every project and manages users and instance settings.

A caller without any role in a project is told the project does not exist or is not theirs
(``not_a_member``, answered 404, the same as for an id that names nothing), so ids cannot be
probed; a caller whose role is too weak is told which role it takes (``forbidden``, 403).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from fulmen.errors import AccessError
from fulmen.store import Role

__all__ = [
    "GRANTS",
    "STRENGTH",
    "Permission",
    "Principal",
    "PrincipalKind",
    "allowed",
    "require",
    "require_grant",
    "require_instance_admin",
    "require_project_creator",
    "weakest_role",
]


class Permission(StrEnum):
    READ = "read"
    READ_BODIES = "read_bodies"
    RUN = "run"
    EDIT = "edit"
    MANAGE = "manage"
    MEMBERS = "members"
    OWN = "own"


_VIEWER: Final = frozenset({Permission.READ})
_EDITOR: Final = _VIEWER | {Permission.READ_BODIES, Permission.RUN, Permission.EDIT}
_ADMIN: Final = _EDITOR | {Permission.MANAGE, Permission.MEMBERS}
_OWNER: Final = _ADMIN | {Permission.OWN}

#: What each role may do in its project.
GRANTS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
}

#: The roles from the weakest: one may give (to a member, to a service token) only a role no
#: stronger than one's own, and only an owner gives or takes the owner role.
STRENGTH: Final[tuple[Role, ...]] = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)

#: What a request acts as: ``user`` (signed in, or through a personal token), ``service``
#: (a project's service token), ``operator`` (a token made before any user existed).
PrincipalKind = Literal["user", "service", "operator"]

_PHRASES: Final[Mapping[Permission, str]] = {
    Permission.READ: "seeing it",
    Permission.READ_BODIES: "seeing dataclip bodies",
    Permission.RUN: "starting, cancelling or retrying runs",
    Permission.EDIT: "changing workflows, jobs and triggers",
    Permission.MANAGE: "managing credentials and settings",
    Permission.MEMBERS: "managing members",
    Permission.OWN: "this",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, with every role it holds (read once per request)."""

    kind: PrincipalKind
    #: The user's id, or the token's for a service or operator token.
    id: str
    #: The user's e-mail, or the token's name: how the audit trail names them.
    name: str
    instance_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    #: The API token the request carried; ``None`` for a dashboard session.
    token_id: str | None = None

    def role_in(self, project_id: str) -> Role | None:
        if self.instance_admin:
            return Role.OWNER
        return self.roles.get(project_id)

    def sees_all_projects(self) -> bool:
        return self.instance_admin

    @property
    def may_create_projects(self) -> bool:
        """Users and operators may (a user becomes the new project's owner); a service
        token belongs to one project and may not."""
        return self.kind != "service"


def allowed(
    principal: Principal,
    permission: Permission,
    project_id: str,
    *,
    viewers_see_bodies: bool = False,
) -> bool:
    """Whether ``principal`` may do ``permission`` in ``project_id``."""
    role = principal.role_in(project_id)
    if role is None:
        return False
    if permission is Permission.READ_BODIES and role is Role.VIEWER:
        return viewers_see_bodies
    return permission in GRANTS[role]


def weakest_role(permission: Permission) -> Role:
    """The weakest role that may do ``permission`` (to say what would be needed)."""
    for role in STRENGTH:
        if permission in GRANTS[role]:
            return role
    raise AssertionError(permission)


def require(
    principal: Principal,
    permission: Permission,
    project_id: str,
    *,
    viewers_see_bodies: bool = False,
    what: str | None = None,
) -> None:
    """Raise unless ``principal`` may do ``permission`` in ``project_id``. ``what`` names
    the thing asked for when it is not the project itself (``workflow 5f…``): a refusal
    then names the thing, never its project, which the caller may not know of.

    Raises:
        AccessError: ``not_a_member`` (no role there: answered as an unknown project) or
            ``forbidden`` (a role too weak: names the role it takes).
    """
    if allowed(principal, permission, project_id, viewers_see_bodies=viewers_see_bodies):
        return
    role = principal.role_in(project_id)
    if role is None:
        hidden = (
            f"{what} does not exist or you are not a member of its project"
            if what
            else f"project {project_id} does not exist or you are not a member of it"
        )
        raise AccessError(hidden, permission=permission, project_id=project_id, code="not_a_member")
    needed = weakest_role(permission)
    raise AccessError(
        f"you are {_article(role)} {role} of project {project_id}: {_PHRASES[permission]} "
        f"takes the {needed} role or a stronger one",
        permission=permission,
        project_id=project_id,
    )


def require_grant(
    principal: Principal, role: Role, project_id: str, *, current: Role | None = None
) -> None:
    """Raise unless ``principal`` may give ``role`` in ``project_id`` (to a member whose role
    is ``current``, or to a new service token): it manages members there, and neither
    ``role`` nor ``current`` is stronger than its own; the owner role is given and taken
    by owners only (an admin cannot make an owner, nor demote one).

    Raises:
        AccessError: as :func:`require`.
    """
    require(principal, Permission.MEMBERS, project_id)
    own = principal.role_in(project_id)
    assert own is not None  # a member, or require refused
    for asked in (role, current):
        if asked is not None and STRENGTH.index(asked) > STRENGTH.index(own):
            raise AccessError(
                f"you are {_article(own)} {own} of project {project_id}: giving or taking the "
                f"{asked} role takes that role or a stronger one",
                permission=Permission.OWN if asked is Role.OWNER else Permission.MEMBERS,
                project_id=project_id,
            )


def require_project_creator(principal: Principal) -> None:
    """Raise unless ``principal`` may create projects (a service token may not).

    Raises:
        AccessError: ``forbidden``.
    """
    if not principal.may_create_projects:
        raise AccessError(
            "a service token acts in its own project only: it cannot create projects",
            permission="create_project",
        )


def require_instance_admin(principal: Principal, what: str) -> None:
    """Raise unless ``principal`` is an instance admin.

    Raises:
        AccessError: ``forbidden``, saying that ``what`` takes an instance admin.
    """
    if not principal.instance_admin:
        raise AccessError(f"{what} takes an instance admin", permission="instance")


def _article(role: Role) -> str:
    return "an" if role in (Role.OWNER, Role.ADMIN, Role.EDITOR) else "a"
