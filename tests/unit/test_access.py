"""What each role may do (coordinator/access.py), as a table: every permission × role."""

from __future__ import annotations

import pytest

from fulmen.coordinator.access import (
    STRENGTH,
    Permission,
    Principal,
    allowed,
    require,
    require_grant,
    require_project_creator,
)
from fulmen.errors import AccessError
from fulmen.store import Role

P = Permission
#: Permission → the roles that have it; the issue's words: viewer reads (no bodies unless
#: the project allows), editor changes workflows and runs, admin manages, owner owns.
TABLE = {
    P.READ: {Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER},
    P.READ_BODIES: {Role.EDITOR, Role.ADMIN, Role.OWNER},
    P.RUN: {Role.EDITOR, Role.ADMIN, Role.OWNER},
    P.EDIT: {Role.EDITOR, Role.ADMIN, Role.OWNER},
    P.MANAGE: {Role.ADMIN, Role.OWNER},
    P.MEMBERS: {Role.ADMIN, Role.OWNER},
    P.OWN: {Role.OWNER},
}


def user(role: Role | None, *, admin: bool = False) -> Principal:
    return Principal("user", "u1", "u@example.org", admin, {"p1": role} if role else {})


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_each_role_has_exactly_its_permissions(permission: Permission, role: Role) -> None:
    assert allowed(user(role), permission, "p1") is (role in TABLE[permission])
    assert not allowed(user(role), permission, "p2")  # a role is for its own project


def test_a_viewer_sees_bodies_where_the_project_allows_it() -> None:
    assert allowed(user(Role.VIEWER), P.READ_BODIES, "p1", viewers_see_bodies=True)


def test_an_instance_admin_owns_every_project() -> None:
    assert all(allowed(user(None, admin=True), p, "any") for p in Permission)


def test_a_refusal_names_the_role_it_takes_or_hides_the_project() -> None:
    with pytest.raises(AccessError) as refused:
        require(user(Role.VIEWER), P.EDIT, "p1")
    assert refused.value.code == "forbidden"
    assert refused.value.message == (
        "you are a viewer of project p1: changing workflows, jobs and triggers takes the "
        "editor role or a stronger one"
    )
    with pytest.raises(AccessError) as hidden:
        require(user(Role.OWNER), P.READ, "p2")
    assert hidden.value.code == "not_a_member"
    assert "does not exist or you are not a member" in hidden.value.message


def test_a_refusal_of_a_thing_names_the_thing_and_not_its_project() -> None:
    with pytest.raises(AccessError) as hidden:
        require(user(Role.OWNER), P.READ, "p2", what="run 42")
    assert hidden.value.message == "run 42 does not exist or you are not a member of its project"
    assert hidden.value.project_id == "p2"  # for the audit trail, not for the caller


@pytest.mark.parametrize("own", list(Role))
@pytest.mark.parametrize("given", list(Role))
def test_a_role_is_given_by_a_member_manager_holding_at_least_it(own: Role, given: Role) -> None:
    """Admins give viewer, editor and admin; owners give owner too; nobody else gives any."""
    may = own in (Role.ADMIN, Role.OWNER) and STRENGTH.index(given) <= STRENGTH.index(own)
    try:
        require_grant(user(own), given, "p1")
    except AccessError as refused:
        assert not may and refused.code == "forbidden"
    else:
        assert may


def test_an_admin_neither_demotes_nor_removes_an_owner() -> None:
    with pytest.raises(AccessError) as refused:
        require_grant(user(Role.ADMIN), Role.VIEWER, "p1", current=Role.OWNER)
    assert "giving or taking the owner role takes that role" in refused.value.message
    require_grant(user(Role.OWNER), Role.VIEWER, "p1", current=Role.OWNER)
    require_grant(user(None, admin=True), Role.OWNER, "p1")


def test_a_service_token_creates_no_project() -> None:
    service = Principal("service", "t1", "ci", roles={"p1": Role.OWNER})
    with pytest.raises(AccessError):
        require_project_creator(service)
    require_project_creator(user(None))
    require_project_creator(Principal("operator", "t0", "ops", instance_admin=True))
