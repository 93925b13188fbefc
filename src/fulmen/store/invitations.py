"""Invitations (issue 18): a link an admin passes on, with no e-mail server in between.

The link holds a random secret; the store keeps only its SHA-256, so that a copy of the
database opens no account. An invitation is for one e-mail address and gives, once accepted,
a role in a project and/or the instance's administration. It can be used once, until it
expires (the coordinator says when: 7 days by default).

Accepting is one transaction: the invitation is marked used (a second acceptance, even a
concurrent one, finds it used), the user is made (with the password they chose) or found (an
existing user keeps their password), and the role is given. An invitation never lowers a
role: a member who is already stronger in the project stays so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store.catalog import get_project
from fulmen.store.db import Row, Tx, time_or_none
from fulmen.store.members import get_member, put_member
from fulmen.store.models.invitations import Invitation, NewInvitation
from fulmen.store.models.users import NewUser, Role, User
from fulmen.store.users import create_user, find_user, normal_email, set_instance_admin

__all__ = [
    "accept_invitation",
    "create_invitation",
    "delete_invitation",
    "get_invitation",
    "list_invitations",
]

#: Roles weakest first: an invitation gives its role only to someone weaker in the project.
_STRENGTH: Final = (Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER)


async def create_invitation(
    tx: Tx, new: NewInvitation, digest: str, expires_at: datetime, now: datetime
) -> Invitation:
    """Store an invitation whose secret's SHA-256 is ``digest``.

    Raises:
        InputError: ``bad_email``; ``bad_invitation`` for a project without a role or a role
            without a project.
        NotFoundError: no such project.
        ConflictError: ``user_disabled``: the address is a disabled user's (enable them).
    """
    email = normal_email(new.email)
    if (new.project_id is None) != (new.role is None):
        raise InputError(
            "an invitation to a project names the role it gives there, and a role its project",
            code="bad_invitation",
            field="role" if new.role is None else "project_id",
        )
    if new.project_id is not None:
        await get_project(tx, new.project_id)
    existing = await find_user(tx, email)
    if existing is not None and not existing.active:
        raise _disabled(email)
    await tx.execute(
        "insert_invitation",
        {
            "digest": digest,
            "email": email,
            "instance_admin": new.instance_admin,
            "project_id": new.project_id,
            "role": new.role,
            "invited_by": new.invited_by,
            "now": now,
            "expires_at": expires_at,
        },
    )
    row = await tx.fetchone("get_invitation", {"digest": digest})
    assert row is not None
    return _invitation(tx, row)


async def get_invitation(tx: Tx, digest: str, now: datetime) -> Invitation:
    """The invitation, if it can still be accepted.

    Raises:
        NotFoundError: ``unknown_invitation``, ``invitation_used`` or ``invitation_expired``.
    """
    row = await tx.fetchone("get_invitation", {"digest": digest})
    if row is None:
        raise NotFoundError(
            "this invitation link is not one this Fulmen made (check that it was copied whole)",
            code="unknown_invitation",
            field="invitation",
        )
    invitation = _invitation(tx, row)
    if invitation.accepted_at is not None:
        raise _used()
    if invitation.expires_at <= now:
        raise NotFoundError(
            "this invitation link has expired: ask whoever invited you for a new one",
            code="invitation_expired",
            field="invitation",
        )
    return invitation


async def accept_invitation(
    tx: Tx, digest: str, now: datetime, *, password_hash: str | None, name: str = ""
) -> tuple[User, Invitation]:
    """Use the invitation: make its user with ``password_hash`` and ``name``, or, with no
    ``password_hash``, find them (who accepts has proved they are them); give what it gives;
    the user and the invitation. A new account is never an existing one: whoever typed a
    password for a new account does not get into one made meanwhile with that address.

    Raises:
        NotFoundError: see :func:`get_invitation` (an invitation accepted meanwhile is used).
        InputError: ``password_required``: a new user without a password.
        ConflictError: ``user_disabled``: the address is a disabled user's; ``user_exists``:
            a password for a new account, and the address has one (nothing is used up).
    """
    invitation = await get_invitation(tx, digest, now)
    user = await find_user(tx, invitation.email)
    if user is not None and not user.active:
        raise _disabled(invitation.email)
    if user is None and password_hash is None:
        raise InputError(
            "choose a password for your new account", code="password_required", field="password"
        )
    if user is not None and password_hash is not None:
        raise ConflictError(
            f"{invitation.email} has an account already: sign in with its password to accept",
            code="user_exists",
            field="password",
        )
    if not await tx.execute("accept_invitation", {"digest": digest, "now": now}):
        raise _used()  # accepted by another request meanwhile
    if user is None:
        new = NewUser(invitation.email, name, password_hash, invitation.instance_admin)
        user = await create_user(tx, new, now)
    elif invitation.instance_admin and not user.instance_admin:
        user = await set_instance_admin(tx, user.id, True, now)
    if invitation.project_id is not None and invitation.role is not None:
        await _give(tx, invitation.project_id, user.id, invitation.role, now)
    return user, invitation


async def _give(tx: Tx, project_id: str, user_id: str, role: Role, now: datetime) -> None:
    """``role`` in the project, unless the user is a member with a stronger one already."""
    try:
        current = (await get_member(tx, project_id, user_id)).role
    except NotFoundError:
        current = None
    if current is None or _STRENGTH.index(current) < _STRENGTH.index(role):
        await put_member(tx, project_id, user_id, role, now)


async def list_invitations(tx: Tx, now: datetime) -> list[Invitation]:
    """The invitations that can still be accepted, the newest first."""
    rows = await tx.fetchall("list_open_invitations", {"now": now})
    return [_invitation(tx, row) for row in rows]


async def delete_invitation(tx: Tx, digest: str) -> Invitation:
    """Revoke an invitation: its link opens nothing from now on; what it was.

    Raises:
        NotFoundError: no such invitation.
    """
    row = await tx.fetchone("get_invitation", {"digest": digest})
    if row is None or not await tx.execute("delete_invitation", {"digest": digest}):
        raise NotFoundError(f"invitation {digest} does not exist", field="invitation")
    return _invitation(tx, row)


def _used() -> NotFoundError:
    return NotFoundError(
        "this invitation link was used already: each one works once; sign in, or ask for a new one",
        code="invitation_used",
        field="invitation",
    )


def _disabled(email: str) -> ConflictError:
    return ConflictError(
        f"the user {email} is disabled: an instance admin enables them again",
        code="user_disabled",
        field="email",
    )


def _invitation(tx: Tx, row: Row) -> Invitation:
    return Invitation(
        digest=row["digest"],
        email=row["email"],
        project_id=row["project_id"],
        role=Role(row["role"]) if row["role"] else None,
        instance_admin=bool(row["instance_admin"]),
        invited_by=row["invited_by"],
        inserted_at=tx.time(row["inserted_at"]),
        expires_at=tx.time(row["expires_at"]),
        accepted_at=time_or_none(tx, row["accepted_at"]),
    )
