"""What became of each password sign-in (issue 18): one function per outcome, called once,
where the outcome is decided (sign_in.py, which the sign-in page, an invitation for an
existing account and the account page's current password share).

Each records the attempt in the audit trail (audit.sign_in_at: ``sign_in.succeeded`` or
``sign_in.failed`` with its reason, who, and from which address) and logs it on the
``fulmen.sign_in`` logger: successes at INFO, refusals at WARNING (what an operator watching
for an attack wants to see). A password is never passed here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fulmen.coordinator import audit, principals
from fulmen.coordinator.core import Coordinator
from fulmen.store import User

__all__ = ["failed", "rate_limited", "succeeded"]

log = logging.getLogger("fulmen.sign_in")

#: The longest address recorded of what was typed (RFC 5321 allows 254).
_TYPED: int = 320


async def succeeded(c: Coordinator, user: User, address: str, *, method: str) -> None:
    """``user`` proved who they are with a password (the second factor may still be to come;
    ``method``: ``password``, or what asked for it: ``invitation``, ``current password``)."""
    log.info("sign-in of %s (%s) from %s by %s", user.email, user.id, address or "?", method)
    principal = await principals.of_user(c.store, user)
    await audit.sign_in_at(
        c.store, address, user.email, "succeeded", principal=principal, method=method
    )


async def failed(
    c: Coordinator,
    email: str,
    address: str,
    *,
    reason: str,
    method: str,
    user: User | None = None,
) -> None:
    """A sign-in as ``email`` was refused: ``reason`` is the SignInError's code
    (``bad_credentials``, ``disabled``); ``user`` is whose account it was, if anyone's."""
    who = f"{user.email} ({user.id})" if user else f"{email[:_TYPED]!r} (no such user)"
    log.warning("sign-in of %s from %s refused: %s", who, address or "?", reason)
    typed = user.email if user else email.strip()[:_TYPED]
    await audit.sign_in_at(c.store, address, typed, "failed", reason=reason, method=method)


async def rate_limited(
    c: Coordinator, email: str, address: str, *, until: datetime, method: str
) -> None:
    """A sign-in as ``email`` was refused unchecked: too many failures lately."""
    log.warning(
        "sign-in of %r from %s refused until %s: too many failures",
        email[:_TYPED],
        address or "?",
        until.isoformat(timespec="seconds"),
    )
    typed = email.strip()[:_TYPED]
    await audit.sign_in_at(c.store, address, typed, "failed", reason="rate_limited", method=method)
