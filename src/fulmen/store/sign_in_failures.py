"""Failed sign-ins, counted per subject for the rate limits (issue 18), in the store that
every coordinator of an instance shares: a limit kept in one coordinator's memory would let
an attacker spread their guesses over the others. Subjects are the coordinator's words:
``email:<address>`` and ``ip:<address>`` for passwords, ``mfa:<user id>`` for second-factor
codes. What a limit allows is the coordinator's decision; the store keeps when each failure
was.

Passwords (coordinator/sign_in.py): :func:`begin_sign_in` decides and counts in one
transaction: it refuses when a subject already has its limit of failures within the window,
and otherwise counts the attempt as a failure of each subject *before* the password is
checked. So a burst of guesses sent at once cannot all pass the check while the first ones
are still being hashed: each guess is counted the moment it is let through, and the ones
after the limit are refused. An attempt that succeeds is then forgiven
(:func:`forgive_sign_in`). The transaction takes a lock first (PostgreSQL: an advisory lock;
SQLite's write lock already serialises it), so two coordinators cannot both let the fifth
guess through. Failures of the attempt's kinds of subject (``email:``, ``ip:``) older than
the window are pruned by every attempt (other kinds keep their own windows); refused attempts
are not counted, so an account under attack is refused for the window after its last counted
failure, not for ever.

Second-factor codes (coordinator/second_factor.py) are counted after they are checked:
:func:`note_sign_in_failure`, :func:`sign_in_failures`, :func:`clear_sign_in_failures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fulmen.errors import InputError
from fulmen.store.db import Tx

__all__ = [
    "SignInAttempt",
    "begin_sign_in",
    "clear_sign_in_failures",
    "forgive_sign_in",
    "note_sign_in_failure",
    "retry_at",
    "sign_in_failures",
]

#: The longest subject kept: an address is at most 254 characters (RFC 5321), and a form
#: could send far more.
MAX_SUBJECT: int = 320


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """What :func:`begin_sign_in` decided: ``refused_until`` is ``None`` when the attempt
    may go on (and was counted as a failure of each of ``subjects`` at ``at``), else the time
    from which it may be tried again (and nothing was counted)."""

    subjects: tuple[str, ...]
    at: datetime
    refused_until: datetime | None = None

    @property
    def refused(self) -> bool:
        return self.refused_until is not None


def retry_at(failures: Sequence[datetime], limit: int, window: timedelta) -> datetime | None:
    """When a subject with ``failures`` (newest first, within the window) may be tried again:
    ``None`` if it may now (fewer than ``limit``), else when the ``limit``-th newest failure
    leaves the window, leaving fewer than ``limit``."""
    if len(failures) < limit:
        return None
    return failures[limit - 1] + window


async def begin_sign_in(
    tx: Tx, limits: Mapping[str, int], window: timedelta, now: datetime
) -> SignInAttempt:
    """Refuse, or count in advance, an attempt against each subject of ``limits`` (subject →
    the failures it may have within ``window``).

    Raises:
        InputError: a limit under 1, or a window that is not positive.
    """
    if window <= timedelta(0) or any(limit < 1 for limit in limits.values()):
        raise InputError("sign-in limits must be at least 1 within a positive window")
    subjects = tuple(subject[:MAX_SUBJECT] for subject in limits)
    await tx.fetchone("lock_sign_in_failures")
    for kind in sorted({subject.partition(":")[0] for subject in subjects}):
        params = {"kind": f"{kind}:%", "before": now - window}
        await tx.execute("prune_sign_in_failures", params)
    refused: list[datetime] = []
    for subject, limit in zip(subjects, limits.values(), strict=True):
        rows = await tx.fetchall("recent_sign_in_failures", {"subject": subject, "limit": limit})
        until = retry_at([tx.time(row["at"]) for row in rows], limit, window)
        if until is not None:
            refused.append(until)
    if refused:
        return SignInAttempt(subjects, now, max(refused))
    for subject in subjects:
        await tx.execute("insert_sign_in_failure", {"subject": subject, "now": now})
    return SignInAttempt(subjects, now)


async def forgive_sign_in(tx: Tx, attempt: SignInAttempt, *, forget: str = "") -> None:
    """The attempt succeeded: it is no failure after all, and ``forget`` (the account's
    subject) loses its earlier failures too. Rows of one subject at one instant are alike,
    so taking back the attempt is deleting one of them."""
    if attempt.refused:
        return
    for subject in attempt.subjects:
        await tx.execute("forgive_sign_in_failure", {"subject": subject, "at": attempt.at})
    if forget:
        await clear_sign_in_failures(tx, forget[:MAX_SUBJECT])


async def note_sign_in_failure(
    tx: Tx, subject: str, now: datetime, forget_before: datetime
) -> None:
    """Count a failure against ``subject`` at ``now``; failures of ``subject`` before
    ``forget_before`` no longer count and are removed."""
    await tx.execute("forget_sign_in_failures", {"subject": subject, "before": forget_before})
    await tx.execute("insert_sign_in_failure", {"subject": subject, "now": now})


async def sign_in_failures(tx: Tx, subject: str, since: datetime) -> list[datetime]:
    """When each failure of ``subject`` since ``since`` happened, oldest first."""
    rows = await tx.fetchall("list_sign_in_failures", {"subject": subject, "since": since})
    return [tx.time(row["at"]) for row in rows]


async def clear_sign_in_failures(tx: Tx, subject: str) -> None:
    """A sign-in succeeded: ``subject``'s failures stop counting."""
    await tx.execute("clear_sign_in_failures", {"subject": subject})
