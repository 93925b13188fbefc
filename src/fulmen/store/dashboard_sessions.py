"""The dashboard's sign-in sessions, kept as digests: what the coordinator needs to check one.

The dashboard mints a random session id for its cookie; the store keeps only the id's SHA-256
(as it keeps API tokens), whose session it is (a user's; before any user exists, the API
token's that signed in), its stage (``mfa``: the password was right, the second factor is
still to come), the address it began from, when it began and when it was last used. A
session is refused once unused for ``limits.idle`` or older than ``limits.absolute``, when
its user is disabled, and when its user or token is gone (the foreign keys cascade). A
password change ends the user's other sessions (users.py).

"Last used" is written at most once a minute (:data:`TOUCH_EVERY`), so that a tab polling
every two seconds does not take the database's write lock every two seconds; the idle limit
is therefore exact to within that minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from fulmen.errors import InputError
from fulmen.store.api_tokens import get_api_token
from fulmen.store.db import Database, Tx
from fulmen.store.users import get_user

__all__ = [
    "TOUCH_EVERY",
    "DashboardSession",
    "SessionLimits",
    "SessionStage",
    "end_session",
    "open_session",
    "resume_session",
    "set_session_stage",
]

TOUCH_EVERY: Final = timedelta(minutes=1)
#: ``full``: signed in; ``mfa``: the password was right, the second factor is awaited.
SessionStage = Literal["full", "mfa"]


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How long a session lives: ``idle`` since it was last used, ``absolute`` in all."""

    idle: timedelta
    absolute: timedelta

    def __post_init__(self) -> None:
        if self.idle <= timedelta(0) or self.absolute <= timedelta(0):
            raise InputError("a session's idle and absolute limits must be positive")

    def expired(self, inserted_at: datetime, seen_at: datetime, now: datetime) -> bool:
        return now - seen_at >= self.idle or now - inserted_at >= self.absolute


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """A live session: exactly one of ``user_id`` and ``token_id`` is set."""

    user_id: str | None
    token_id: str | None
    stage: SessionStage
    inserted_at: datetime


async def open_session(
    tx: Tx,
    digest: str,
    limits: SessionLimits,
    now: datetime,
    *,
    user_id: str | None = None,
    token_id: str | None = None,
    stage: SessionStage = "full",
    address: str = "",
) -> None:
    """Start a session for a user or a token (which must exist: NotFoundError), removing
    every session that has expired meanwhile, whoever's it was."""
    if (user_id is None) == (token_id is None):
        raise InputError("a session is a user's or a token's", code="bad_session")
    await tx.execute(
        "delete_expired_dashboard_sessions",
        {"idle_before": now - limits.idle, "absolute_before": now - limits.absolute},
    )
    if user_id is not None:
        await get_user(tx, user_id)
    if token_id is not None:
        await get_api_token(tx, token_id)
    await tx.execute(
        "insert_dashboard_session",
        {
            "digest": digest,
            "user_id": user_id,
            "token_id": token_id,
            "stage": stage,
            "address": address,
            "now": now,
        },
    )


async def resume_session(
    db: Database, digest: str, limits: SessionLimits, now: datetime
) -> DashboardSession | None:
    """The live session, noting its use; ``None`` (and the row removed when it expired)
    otherwise. Reads first, and writes only when there is something to write."""
    async with db.read() as tx:
        row = await tx.fetchone("get_dashboard_session", {"digest": digest})
        if row is None:
            return None
        inserted_at, seen_at = tx.time(row["inserted_at"]), tx.time(row["seen_at"])
        session = DashboardSession(row["user_id"], row["token_id"], row["stage"], inserted_at)
    if limits.expired(inserted_at, seen_at, now):
        async with db.write() as tx:
            await tx.execute("delete_dashboard_session", {"digest": digest})
        return None
    if now - seen_at >= TOUCH_EVERY:
        async with db.write() as tx:
            await tx.execute("touch_dashboard_session", {"digest": digest, "now": now})
    return session


async def set_session_stage(tx: Tx, digest: str, stage: SessionStage, now: datetime) -> None:
    """The second factor was given: the session opens everything now."""
    await tx.execute("set_dashboard_session_stage", {"digest": digest, "stage": stage, "now": now})


async def end_session(tx: Tx, digest: str) -> None:
    """Signing out: the session is gone (and nothing happens if it already was)."""
    await tx.execute("delete_dashboard_session", {"digest": digest})
