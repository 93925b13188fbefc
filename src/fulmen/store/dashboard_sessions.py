"""The dashboard's sign-in sessions, kept as digests: what the coordinator needs to check one.

The dashboard mints a random session id for its cookie; the store keeps only the id's SHA-256
(as it keeps API tokens), the API token that signed in, when the session began and when it
was last used. A session is refused once unused for ``limits.idle`` or older than
``limits.absolute``, and when its token is gone: deleting a token deletes its sessions (the
foreign key cascades), and the lookup joins the token besides.

"Last used" is written at most once a minute (:data:`TOUCH_EVERY`), so that a tab polling
every two seconds does not take the database's write lock every two seconds; the idle limit
is therefore exact to within that minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from fulmen.errors import InputError
from fulmen.store.api_tokens import get_api_token
from fulmen.store.db import Database, Row, Tx
from fulmen.store.models.api_tokens import ApiToken

__all__ = ["TOUCH_EVERY", "SessionLimits", "end_session", "open_session", "resume_session"]

TOUCH_EVERY: Final = timedelta(minutes=1)


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


async def open_session(
    tx: Tx, digest: str, token_id: str, limits: SessionLimits, now: datetime
) -> None:
    """Start a session for ``token_id`` (which must exist: NotFoundError), removing every
    session that has expired meanwhile, whoever's it was."""
    await tx.execute(
        "delete_expired_dashboard_sessions",
        {"idle_before": now - limits.idle, "absolute_before": now - limits.absolute},
    )
    await get_api_token(tx, token_id)
    await tx.execute(
        "insert_dashboard_session", {"digest": digest, "token_id": token_id, "now": now}
    )


async def resume_session(
    db: Database, digest: str, limits: SessionLimits, now: datetime
) -> ApiToken | None:
    """The token of a live session, noting its use; ``None`` (and the row removed when it
    expired) otherwise. Reads first, and writes only when there is something to write."""
    async with db.read() as tx:
        row = await tx.fetchone("get_dashboard_session", {"digest": digest})
        if row is None:
            return None
        inserted_at, seen_at = tx.time(row["inserted_at"]), tx.time(row["seen_at"])
        token = _token(tx, row)
    if limits.expired(inserted_at, seen_at, now):
        async with db.write() as tx:
            await tx.execute("delete_dashboard_session", {"digest": digest})
        return None
    if now - seen_at >= TOUCH_EVERY:
        async with db.write() as tx:
            await tx.execute("touch_dashboard_session", {"digest": digest, "now": now})
    return token


async def end_session(tx: Tx, digest: str) -> None:
    """Signing out: the session is gone (and nothing happens if it already was)."""
    await tx.execute("delete_dashboard_session", {"digest": digest})


def _token(tx: Tx, row: Row) -> ApiToken:
    return ApiToken(
        id=row["token_id"],
        name=row["token_name"],
        digest=row["token_digest"],
        inserted_at=tx.time(row["token_inserted_at"]),
    )
