"""What became of each sign-in (issue 18): one function per outcome, called once, where the
outcome is decided (sign_in.py for passwords; the dashboard's invitation and account pages).

These are the audit trail's hook points: each says who (the user, or the e-mail address that
was typed), from where (the client's address, as the session records it) and how
(``method``: ``password``, ``invitation``…). Today they log, on the ``fulmen.sign_in`` logger:
successes at INFO, refusals at WARNING (what an operator watching for an attack wants to
see). A password is never passed here, nor an invitation's secret.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fulmen.coordinator.core import Coordinator
from fulmen.store import Invitation, User

__all__ = ["failed", "invitation_accepted", "password_changed", "rate_limited", "succeeded"]

log = logging.getLogger("fulmen.sign_in")


async def succeeded(c: Coordinator, user: User, address: str, *, method: str) -> None:
    """``user`` proved who they are (the second factor may still be to come)."""
    log.info("sign-in of %s (%s) from %s by %s", user.email, user.id, address or "?", method)


async def failed(
    c: Coordinator, email: str, address: str, *, reason: str, user: User | None = None
) -> None:
    """A sign-in as ``email`` was refused: ``reason`` is the SignInError's code
    (``bad_credentials``, ``disabled``); ``user`` is whose account it was, if anyone's."""
    who = f"{user.email} ({user.id})" if user else f"{email[:320]!r} (no such user)"
    log.warning("sign-in of %s from %s refused: %s", who, address or "?", reason)


async def rate_limited(c: Coordinator, email: str, address: str, *, until: datetime) -> None:
    """A sign-in as ``email`` was refused unchecked: too many failures lately."""
    log.warning(
        "sign-in of %r from %s refused until %s: too many failures",
        email[:320],
        address or "?",
        until.isoformat(timespec="seconds"),
    )


async def password_changed(c: Coordinator, user: User, address: str) -> None:
    """``user`` changed their own password (their other sessions ended)."""
    log.info("password of %s (%s) changed from %s", user.email, user.id, address or "?")


async def invitation_accepted(
    c: Coordinator, user: User, invitation: Invitation, address: str
) -> None:
    """``user`` accepted an invitation (made for them, or given its role)."""
    where = f" as {invitation.role} of {invitation.project_id}" if invitation.project_id else ""
    admin = " as instance admin" if invitation.instance_admin else ""
    log.info(
        "invitation of %s (%s) accepted%s%s from %s",
        user.email,
        user.id,
        where,
        admin,
        address or "?",
    )
