"""Signing in with an e-mail address and a password (issue 18), rate-limited per account and
per address, the same wherever a password is asked for (the sign-in page, an invitation for
an existing account, the current password on the account page).

The order is the point:

1. The attempt is counted against the account (``email:<address>``) and the client's
   address (``ip:<address>``) before anything else, in the store all coordinators share
   (store/sign_in_failures.py). Once either had its limit of failures within the window
   (``FULMEN_SIGN_IN_ACCOUNT_LIMIT``, 5, and ``FULMEN_SIGN_IN_ADDRESS_LIMIT``, 20, within
   ``FULMEN_SIGN_IN_WINDOW_SECONDS``, 15 minutes), the attempt is refused without checking the
   password (``rate_limited``, 429, saying when to try again): guessing is slow however many
   coordinators, connections or accounts it is spread over.
2. The password is checked against the user's hash, or against a dummy one when nobody has
   that address (passwords.py), so that the answer takes as long either way; a wrong address
   and a wrong password are refused in the same words (``bad_credentials``).
3. Only a right password learns that the account is disabled (``disabled``).
4. A success takes the attempt back and clears the account's failures; a hash made with
   weaker parameters than today's is remade.

Each outcome is told to sign_ins.py, which records it in the audit trail and logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Final, Self

from fulmen.config import CoordinatorSettings
from fulmen.coordinator import passwords, sign_ins
from fulmen.coordinator.core import Coordinator
from fulmen.errors import InputError, SignInError
from fulmen.store import Store, User

__all__ = [
    "BAD_CREDENTIALS",
    "SignInLimits",
    "check_password",
    "rate_limited",
    "tokens_may_sign_in",
]

#: The one refusal for a wrong address and a wrong password alike.
BAD_CREDENTIALS: Final = "That e-mail address and password do not match an account."


@dataclass(frozen=True, slots=True)
class SignInLimits:
    """How many failures an account and an address may have within ``window``."""

    account: int
    address: int
    window: timedelta

    @classmethod
    def of(cls, settings: CoordinatorSettings) -> Self:
        return cls(
            settings.sign_in_account_limit,
            settings.sign_in_address_limit,
            timedelta(seconds=settings.sign_in_window),
        )

    def subjects(self, email: str, address: str) -> dict[str, int]:
        """What an attempt is counted against, with each one's limit."""
        return {f"email:{email.strip().lower()}": self.account, f"ip:{address}": self.address}


def rate_limited(until: datetime, now: datetime) -> SignInError:
    """The refusal of an attempt made too soon: when to try again, in minutes and in UTC
    (whether the account or the address is at its limit is not said)."""
    minutes = max(1, ceil((until - now).total_seconds() / 60))
    # the minute from which it works, rounded up: "at 09:15" is never a second too early
    at = until + timedelta(minutes=1) if until.second or until.microsecond else until
    return SignInError(
        f"Too many failed sign-ins: try again in {minutes} minute{'s' if minutes > 1 else ''} "
        f"(at {at.astimezone(UTC):%H:%M} UTC).",
        code="rate_limited",
        retry_at=until,
    )


async def check_password(
    c: Coordinator, email: str, password: str, address: str, *, method: str = "password"
) -> User:
    """The active user whose e-mail address and password these are.

    Raises:
        SignInError: ``rate_limited`` (unchecked, with ``retry_at``), ``bad_credentials``
            (no such user, a wrong password or none set), ``disabled`` (a right password).
    """
    limits = SignInLimits.of(c.settings)
    subjects = limits.subjects(email, address)
    attempt = await c.store.begin_sign_in(subjects, limits.window)
    if attempt.refused_until is not None:
        await sign_ins.rate_limited(c, email, address, until=attempt.refused_until, method=method)
        raise rate_limited(attempt.refused_until, c.clock.now())
    user = await c.store.find_user(email)
    checked = await passwords.check(user.password_hash if user else None, password)
    if user is None or not checked.ok:
        await sign_ins.failed(c, email, address, reason="bad_credentials", method=method, user=user)
        raise SignInError(BAD_CREDENTIALS)
    if not user.active:
        await sign_ins.failed(c, email, address, reason="disabled", method=method, user=user)
        raise SignInError(
            "This account is disabled: an instance admin can enable it again.", code="disabled"
        )
    await c.store.forgive_sign_in(attempt, forget=next(iter(subjects)))
    if checked.rehash and user.password_hash is not None:
        await _rehash(c.store, user, password)
    await sign_ins.succeeded(c, user, address, method=method)
    return user


async def _rehash(store: Store, user: User, password: str) -> None:
    """Remake a hash made with weaker parameters (a password too weak for today's rules keeps
    its old hash: the user is asked for a new one when they change it)."""
    assert user.password_hash is not None
    try:
        stronger = await passwords.hash_password(password)
    except InputError:
        return
    await store.rehash_password(user.id, user.password_hash, stronger)


async def tokens_may_sign_in(store: Store) -> bool:
    """Whether the dashboard still takes an API token at its sign-in: only while no user
    exists (the token ``fulmen up`` wrote, before it made the first admin); from the first
    user on, a personal token is for the REST API, and people sign in as themselves."""
    return not await store.list_users()
