"""Single sign-ons begun and not yet come back, and the sessions they began (issue 18).

A request is kept under the SHA-256 of its state (the browser holds the state itself) until
its callback takes it, once, or it expires; whoever replays a callback, or brings a state
the store never saw, finds nothing. Expired requests are removed whenever a new one is kept.
"""

from __future__ import annotations

from datetime import datetime

from fulmen.store.db import Tx
from fulmen.store.models.sign_in import SsoRequest

__all__ = ["is_sso_session", "mark_sso_session", "put_sso_request", "take_sso_request"]


async def put_sso_request(tx: Tx, digest: str, request: SsoRequest, now: datetime) -> None:
    await tx.execute("delete_expired_sso_requests", {"now": now})
    await tx.execute(
        "insert_sso_request",
        {
            "digest": digest,
            "nonce": request.nonce,
            "verifier": request.verifier,
            "redirect_uri": request.redirect_uri,
            "next": request.next,
            "expires_at": request.expires_at,
        },
    )


async def take_sso_request(tx: Tx, digest: str, now: datetime) -> SsoRequest | None:
    """The request kept under ``digest``, removed; ``None`` if there is none or it expired."""
    row = await tx.fetchone("take_sso_request", {"digest": digest})
    if row is None:
        return None
    expires_at = tx.time(row["expires_at"])
    if expires_at <= now:
        return None
    return SsoRequest(row["nonce"], row["verifier"], row["redirect_uri"], row["next"], expires_at)


async def mark_sso_session(tx: Tx, digest: str) -> None:
    """The dashboard session ``digest`` was begun through single sign-on."""
    await tx.execute("insert_sso_session", {"digest": digest})


async def is_sso_session(tx: Tx, digest: str) -> bool:
    return await tx.fetchone("get_sso_session", {"digest": digest}) is not None
