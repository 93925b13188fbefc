"""Who is a member of which project, with which role (issue 18).

A project that has an owner keeps one: removing or demoting its last owner is refused
(ConflictError ``last_owner``), so a project is never left without someone who may delete it
or make owners (an instance admin still may: access.py). Each change and its check are one
transaction under the project's row lock (``lock_project``), so that two admins demoting the
two owners at once cannot both succeed on PostgreSQL either.

What a role allows is the coordinator's business (coordinator/access.py); who may grant which
role is too (coordinator/api/members.py).
"""

from __future__ import annotations

from datetime import datetime

from fulmen.errors import ConflictError, NotFoundError
from fulmen.store.db import Row, Tx
from fulmen.store.models.users import Member, Role

__all__ = ["get_member", "list_members", "put_member", "remove_member"]


async def put_member(tx: Tx, project_id: str, user_id: str, role: Role, now: datetime) -> Member:
    """Give ``user_id`` the role ``role`` in ``project_id`` (a new member, or a new role).

    Raises:
        NotFoundError: no such project or user.
        ConflictError: ``last_owner``: the user is the project's last owner and ``role`` is
            not owner.
    """
    await _lock(tx, project_id)
    if await tx.fetchone("get_user", {"id": user_id}) is None:
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")
    current = await tx.fetchone("get_member", {"project_id": project_id, "user_id": user_id})
    if current is not None and current["role"] == Role.OWNER and role is not Role.OWNER:
        await _keep_an_owner(tx, project_id, "demote")
    params = {"project_id": project_id, "user_id": user_id, "role": role.value, "now": now}
    await tx.execute("upsert_member", params)
    return await get_member(tx, project_id, user_id)


async def remove_member(tx: Tx, project_id: str, user_id: str) -> None:
    """Take ``user_id`` out of ``project_id``.

    Raises:
        NotFoundError: the project does not exist, or the user is not a member of it.
        ConflictError: ``last_owner``: the user is the project's last owner.
    """
    await _lock(tx, project_id)
    current = await get_member(tx, project_id, user_id)
    if current.role is Role.OWNER:
        await _keep_an_owner(tx, project_id, "remove")
    await tx.execute("delete_member", {"project_id": project_id, "user_id": user_id})


async def get_member(tx: Tx, project_id: str, user_id: str) -> Member:
    row = await tx.fetchone("get_member", {"project_id": project_id, "user_id": user_id})
    if row is None:
        raise NotFoundError(
            f"user {user_id} is not a member of project {project_id}", field="user_id"
        )
    return _member(tx, row)


async def list_members(tx: Tx, project_id: str) -> list[Member]:
    """The project's members by e-mail (NotFoundError for a project that does not exist)."""
    if await tx.fetchone("get_project", {"id": project_id}) is None:
        raise NotFoundError(f"project {project_id} does not exist", field="project_id")
    rows = await tx.fetchall("list_members", {"project_id": project_id})
    return [_member(tx, row) for row in rows]


async def _lock(tx: Tx, project_id: str) -> None:
    if await tx.fetchone("lock_project", {"id": project_id}) is None:
        raise NotFoundError(f"project {project_id} does not exist", field="project_id")


async def _keep_an_owner(tx: Tx, project_id: str, change: str) -> None:
    row = await tx.fetchone("count_owners", {"project_id": project_id})
    assert row is not None  # an aggregate
    if int(row["n"]) <= 1:
        raise ConflictError(
            f"cannot {change} the last owner of project {project_id}: make someone else "
            "an owner first",
            field="role",
            code="last_owner",
        )


def _member(tx: Tx, row: Row) -> Member:
    return Member(
        project_id=row["project_id"],
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        inserted_at=tx.time(row["inserted_at"]),
    )
