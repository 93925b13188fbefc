"""Failed sign-ins, counted per subject for the rate limits (issue 18): ``mfa:<user id>``
for wrong second-factor codes, and whatever else a sign-in counts against (``email:…``,
``ip:…``). Kept in the store, so that every coordinator of it counts the same failures.

What a limit allows is the coordinator's decision; the store keeps when each failure was,
and forgets failures older than the window it is asked about whenever it notes a new one.
"""

from __future__ import annotations

from datetime import datetime

from fulmen.store.db import Tx

__all__ = ["clear_sign_in_failures", "note_sign_in_failure", "sign_in_failures"]


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
