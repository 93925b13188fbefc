"""Times as people type them into a listing's filters (the runs list, the audit trail; the
dashboard's forms and the REST API's query strings alike). Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from fulmen.errors import InputError

__all__ = ["moment"]


def moment(text: str, field: str) -> datetime | None:
    """A time as ``datetime-local`` sends it (``2026-01-31T09:30``, read as UTC) or ISO 8601
    with an offset; a date alone is its midnight UTC; empty is none.

    Raises:
        InputError: ``bad_time``, naming ``field``.
    """
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
        # An offset can take a time in year 1 or 9999 out of the range UTC can hold.
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(
            f"{text[:40]!r} is not a time: write it as 2026-01-31T09:30 (UTC)",
            code="bad_time",
            field=field,
        ) from None
