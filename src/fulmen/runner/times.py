"""Times in the runner's API: ISO 8601 in UTC, from and to the unix seconds the registry and
the log book keep (one conversion, so no answer mixes the two again)."""

from __future__ import annotations

from datetime import UTC, datetime

from fulmen.errors import RunnerError

__all__ = ["iso", "seconds"]


def iso(seconds: float | None) -> str | None:
    """Unix seconds as the API writes every time: ISO 8601, UTC."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def seconds(text: str) -> float:
    """A time a client sent (``since``): ISO 8601 (UTC unless it says otherwise) or unix
    seconds.

    Raises:
        RunnerError: ``bad_request`` for anything else.
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RunnerError(
            f"since is an ISO 8601 time (2026-12-05T14:10:00Z) or unix seconds, not {text!r}",
            code="bad_request",
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
