"""The TOTP second factor, with the store (issue 18): enrolling, checking a code at sign-in,
turning it off, and whether a user must enrol before anything else.

The decisions are mfa.py's; this module reads and writes the store around them. A wrong
code, a replayed one and a wrong password (to turn the factor off) each count against the
user (``mfa:<user id>`` in the store's sign-in failures, shared by every coordinator); past
the limit every attempt is refused, right or wrong, until the window has moved on.

Refusals are :class:`~fulmen.errors.SignInError`: ``bad_code`` (neither a current code nor
an unused recovery code), ``replayed_code`` (a code whose step was used already),
``rate_limited`` (too many of these: the message says how long to wait),
``no_second_factor``; and ConflictError ``totp_enabled`` / ``totp_not_begun`` for an
enrolment out of order.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Literal

from fulmen.coordinator import mfa, passwords
from fulmen.errors import ConflictError, SignInError
from fulmen.store import DashboardSession, Store, User

__all__ = ["Proof", "check", "confirm", "enrolment_due", "pending_secret", "prove", "renew_codes"]

log = logging.getLogger(__name__)

#: How a user proved the second factor.
Proof = Literal["totp", "recovery", "password"]


def subject(user_id: str) -> str:
    """What a user's wrong codes are counted against in the store."""
    return f"mfa:{user_id}"


async def pending_secret(store: Store, user_id: str) -> str:
    """The secret to enrol: the one waiting for its first code, else a new one kept now.

    Raises:
        ConflictError: ``totp_enabled``: the user has a second factor already.
    """
    factor = await store.get_second_factor(user_id)
    if factor is not None and factor.enabled:
        raise ConflictError("two-factor sign-in is on already", code="totp_enabled")
    if factor is not None:
        return factor.secret
    secret = mfa.new_secret()
    await store.begin_totp(user_id, secret)
    return secret


async def confirm(
    store: Store, user_id: str, code: str, now: datetime, *, keep_session: str = ""
) -> list[str]:
    """Enable the pending second factor if ``code`` is one of its current codes: its
    recovery codes, to show once. The user's other sessions end.

    Raises:
        SignInError: ``bad_code``.
        ConflictError: ``totp_enabled`` or ``totp_not_begun``.
    """
    factor = await store.get_second_factor(user_id)
    if factor is None:
        raise ConflictError("set up two-factor sign-in first", code="totp_not_begun")
    if factor.enabled:
        raise ConflictError("two-factor sign-in is on already", code="totp_enabled")
    step = mfa.matching_step(factor.secret, code, now)
    if step is None:
        raise SignInError(
            "that is not the code your app shows now: type the six digits it shows for "
            "Fulmen (and check that the phone's clock is right)",
            code="bad_code",
        )
    codes = mfa.new_recovery_codes()
    digests = [mfa.recovery_digest(c) for c in codes]
    await store.enable_totp(user_id, step, digests, keep_session=keep_session)
    log.info("user %s turned two-factor sign-in on", user_id)
    return codes


async def check(store: Store, user_id: str, code: str, now: datetime) -> Proof:
    """Whether ``code`` proves the user's second factor: a current code of their app (each
    step once) or an unused recovery code (used up now). A success clears their failures.

    Raises:
        SignInError: ``rate_limited``, ``no_second_factor``, ``bad_code``, ``replayed_code``.
    """
    await _not_locked(store, user_id, now)
    factor = await store.get_second_factor(user_id)
    if factor is None or not factor.enabled:
        raise SignInError("this account has no second factor", code="no_second_factor")
    if mfa.looks_like_code(code):
        step = mfa.matching_step(factor.secret, code, now)
        if step is not None and await store.use_totp_step(user_id, step):
            return await _passed(store, user_id, "totp")
        if step is not None:
            await _failed(store, user_id)
            raise SignInError(
                "that code was used already: wait for the next one your app shows",
                code="replayed_code",
            )
    elif await store.use_recovery_code(user_id, mfa.recovery_digest(code)):
        log.info("user %s signed in with a recovery code", user_id)
        return await _passed(store, user_id, "recovery")
    await _failed(store, user_id)
    raise SignInError(
        "that is neither the code your app shows now nor an unused recovery code",
        code="bad_code",
    )


async def prove(store: Store, user: User, answer: str, now: datetime) -> Proof:
    """What turning the second factor off or renewing the recovery codes asks for: a current
    code, a recovery code, or the user's password. Wrong answers count as wrong codes.

    Raises:
        SignInError: as :func:`check` does.
    """
    if mfa.looks_like_code(answer) or not user.password_hash:
        return await check(store, user.id, answer, now)
    await _not_locked(store, user.id, now)
    if (await passwords.check(user.password_hash, answer)).ok:
        return await _passed(store, user.id, "password")
    try:
        return await check(store, user.id, answer, now)  # a recovery code, then
    except SignInError as refused:
        if refused.code != "bad_code":
            raise
    raise SignInError(
        "that is neither your password, nor the code your app shows now, nor an unused "
        "recovery code",
        code="bad_code",
    )


async def renew_codes(store: Store, user_id: str) -> list[str]:
    """New recovery codes (to show once); the old ones stop working."""
    codes = mfa.new_recovery_codes()
    await store.replace_recovery_codes(user_id, [mfa.recovery_digest(c) for c in codes])
    return codes


async def enrolment_due(store: Store, session: DashboardSession, digest: str) -> bool:
    """Whether the holder of ``session`` (kept under ``digest``) must enrol a second factor
    before anything else: the instance requires one, the session is a user's begun with a
    password (single sign-on leaves the second factor to the provider), and the user has
    none. The setting is read first: an instance that does not require it pays one read."""
    if session.user_id is None or not (await store.get_instance_settings()).require_mfa:
        return False
    if (await store.get_user(session.user_id)).totp_enabled:
        return False
    return not await store.is_sso_session(digest)


async def _not_locked(store: Store, user_id: str, now: datetime) -> None:
    failures = await store.sign_in_failures(subject(user_id), window=mfa.FAILURE_WINDOW)
    until = mfa.locked_until(failures)
    if until is not None and until > now:
        minutes = max(1, math.ceil((until - now).total_seconds() / 60))
        log.warning("user %s: second factor locked after %d wrong codes", user_id, len(failures))
        raise SignInError(
            f"too many wrong codes: try again in {minutes} minute{'s' if minutes > 1 else ''}",
            code="rate_limited",
        )


async def _failed(store: Store, user_id: str) -> None:
    await store.note_sign_in_failure(subject(user_id), window=mfa.FAILURE_WINDOW)


async def _passed(store: Store, user_id: str, proof: Proof) -> Proof:
    await store.clear_sign_in_failures(subject(user_id))
    return proof
