"""``fulmen workers logs --since``: an age becomes a time; a time goes to the runner as given."""

from __future__ import annotations

from datetime import UTC, datetime

from fulmen.cli.workers import since_time


def test_since_takes_an_age_or_passes_a_time_on() -> None:
    now = datetime(2026, 12, 5, 14, 10, tzinfo=UTC)
    assert since_time("90s", now) == "2026-12-05T14:08:30+00:00"
    assert since_time("10m", now) == "2026-12-05T14:00:00+00:00"
    assert since_time("2h", now) == "2026-12-05T12:10:00+00:00"
    assert since_time("1d", now) == "2026-12-04T14:10:00+00:00"
    assert since_time("2026-12-05T14:00:00Z", now) == "2026-12-05T14:00:00Z"
    assert since_time("1765000000", now) == "1765000000"  # unix seconds, not an age
