"""Users and their roles in projects (issue 18).

A user's password is kept only as the hash the coordinator made (argon2id: access.py's
caller, coordinator/passwords.py); e-mail addresses are kept in lower case, so that
``Ada@Example.org`` and ``ada@example.org`` are one person, as mail servers treat them.

The first instance admin takes over the API tokens made before any user existed (the token
``fulmen up`` wrote, those of ``fulmen server token create``): "today's tokens become the first
admin's", so they keep working, now as that admin's.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Final

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store.db import Row, Tx, time_or_none
from fulmen.store.models.users import NewUser, Role, User

__all__ = [
    "count_users",
    "create_user",
    "find_user",
    "get_user",
    "list_users",
    "normal_email",
    "rehash_password",
    "roles_of",
    "set_instance_admin",
    "set_password",
    "set_user_disabled",
]


#: The longest address RFC 5321 lets through (64 + 1 + 255), with room to spare.
MAX_EMAIL: Final = 320


def normal_email(email: str) -> str:
    """``email`` as stored and compared: trimmed, lower case. A domain without a dot is one
    too (``admin@localhost``, the first admin of ``fulmen up``).

    Raises:
        InputError: ``bad_email`` for something that is not an address.
    """
    address = email.strip().lower()
    if len(address) > MAX_EMAIL:
        message = f"an e-mail address is at most {MAX_EMAIL} characters"
        raise InputError(message, code="bad_email", field="email")
    local, at, domain = address.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in address):
        raise InputError(f"{email!r} is not an e-mail address", code="bad_email", field="email")
    return address


async def create_user(tx: Tx, new: NewUser, now: datetime) -> User:
    """Store ``new``; the first instance admin adopts the operator tokens.

    Raises:
        ConflictError: a user with that e-mail exists.
    """
    email = normal_email(new.email)
    if await tx.fetchone("find_user_by_email", {"email": email}) is not None:
        raise ConflictError(f"a user with the e-mail {email} exists", field="email")
    first_admin = new.instance_admin and (await _counts(tx))[1] == 0
    user_id = secrets.token_hex(8)
    await tx.execute(
        "insert_user",
        {
            "id": user_id,
            "email": email,
            "name": new.name.strip(),
            "password_hash": new.password_hash,
            "instance_admin": new.instance_admin,
            "now": now,
            "password_changed_at": now if new.password_hash else None,
        },
    )
    if first_admin:
        await tx.execute("adopt_operator_api_tokens", {"user_id": user_id})
    return await get_user(tx, user_id)


async def get_user(tx: Tx, user_id: str) -> User:
    row = await tx.fetchone("get_user", {"id": user_id})
    if row is None:
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")
    return _user(tx, row)


async def find_user(tx: Tx, email: str) -> User | None:
    """The user with ``email`` (in any case), if there is one."""
    try:
        address = normal_email(email)
    except InputError:
        return None
    row = await tx.fetchone("find_user_by_email", {"email": address})
    return None if row is None else _user(tx, row)


async def list_users(tx: Tx) -> list[User]:
    return [_user(tx, row) for row in await tx.fetchall("list_users")]


async def count_users(tx: Tx) -> tuple[int, int]:
    """``(active users, active instance admins)``."""
    return await _counts(tx)


async def set_password(
    tx: Tx, user_id: str, password_hash: str, now: datetime, *, keep_session: str = ""
) -> None:
    """Set a user's password hash; every session of theirs but ``keep_session`` (the digest
    of the one that changed it) ends: a password change signs out whoever else holds one."""
    if not await tx.execute(
        "set_user_password", {"id": user_id, "password_hash": password_hash, "now": now}
    ):
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")
    await tx.execute("end_user_dashboard_sessions", {"user_id": user_id, "keep": keep_session})


async def rehash_password(tx: Tx, user_id: str, old_hash: str, new_hash: str) -> bool:
    """Replace a hash made with weaker parameters by one of the same password made with
    today's: no session ends and the password's age stays, as nothing changed for the user.
    Only if the hash is still ``old_hash`` (a password changed meanwhile is kept); whether
    it was replaced."""
    changed = await tx.execute(
        "rehash_user_password", {"id": user_id, "old_hash": old_hash, "new_hash": new_hash}
    )
    return changed > 0


async def set_user_disabled(tx: Tx, user_id: str, disabled: bool, now: datetime) -> User:
    """Disable a user (their sessions end, their personal tokens are refused: principals.py)
    or enable them again.

    Raises:
        NotFoundError: no such user.
        ConflictError: ``last_admin``: they are the last active instance admin, without whom
            nobody could manage the instance.
    """
    user = await get_user(tx, user_id)
    if disabled and user.active and user.instance_admin:
        await _keep_an_admin(tx, user, "disabled")
    await tx.execute(
        "set_user_disabled", {"id": user_id, "disabled_at": now if disabled else None, "now": now}
    )
    if disabled:
        await tx.execute("end_user_dashboard_sessions", {"user_id": user_id, "keep": ""})
    return await get_user(tx, user_id)


async def set_instance_admin(tx: Tx, user_id: str, admin: bool, now: datetime) -> User:
    """Make a user an instance admin, or no longer one.

    Raises:
        NotFoundError: no such user.
        ConflictError: ``last_admin``: unmaking the last active instance admin.
    """
    user = await get_user(tx, user_id)
    if not admin and user.active and user.instance_admin:
        await _keep_an_admin(tx, user, "made a plain user")
    await tx.execute("set_user_instance_admin", {"id": user_id, "admin": admin, "now": now})
    return await get_user(tx, user_id)


async def _keep_an_admin(tx: Tx, user: User, becoming: str) -> None:
    """Raise unless an active instance admin other than ``user`` remains. The active admins'
    rows are locked first (PostgreSQL), so that two admins removing each other at once
    cannot both succeed."""
    admins = await tx.fetchall("lock_active_instance_admins")
    if all(row["id"] == user.id for row in admins):
        raise ConflictError(
            f"{user.email} is the last active instance admin and cannot be {becoming}: make "
            "another user an instance admin first",
            code="last_admin",
            field="user_id",
        )


async def roles_of(tx: Tx, user_id: str) -> dict[str, Role]:
    """The user's role in each project they are a member of."""
    rows = await tx.fetchall("roles_of_user", {"user_id": user_id})
    return {row["project_id"]: Role(row["role"]) for row in rows}


async def _counts(tx: Tx) -> tuple[int, int]:
    row = await tx.fetchone("count_users")
    assert row is not None
    return int(row["n"]), int(row["admins"])


def _user(tx: Tx, row: Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        instance_admin=bool(row["instance_admin"]),
        password_hash=row["password_hash"],
        totp_enabled=row["totp_enabled_at"] is not None,
        disabled_at=time_or_none(tx, row["disabled_at"]),
        password_changed_at=time_or_none(tx, row["password_changed_at"]),
        inserted_at=tx.time(row["inserted_at"]),
    )
