"""The sign-in's pure parts: what an attempt is counted against, and the words of a refusal
for too many failures (when to come back, never which limit was reached)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fulmen.config import CoordinatorSettings
from fulmen.coordinator.sign_in import SignInLimits, rate_limited

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_an_attempt_counts_against_the_account_in_lower_case_and_the_address() -> None:
    limits = SignInLimits.of(CoordinatorSettings())
    assert limits.window == timedelta(minutes=15)
    assert limits.subjects(" Ada@Example.ORG ", "192.0.2.1") == {
        "email:ada@example.org": 5,
        "ip:192.0.2.1": 20,
    }


def test_a_rate_limited_refusal_says_when_to_come_back() -> None:
    refused = rate_limited(NOW + timedelta(minutes=14, seconds=1), NOW)
    assert (refused.code, refused.retry_at) == (
        "rate_limited",
        NOW + timedelta(minutes=14, seconds=1),
    )
    assert refused.message == "Too many failed sign-ins: try again in 15 minutes (at 09:15 UTC)."
    assert "in 1 minute (" in rate_limited(NOW + timedelta(seconds=5), NOW).message
    assert "in 1 minute (" in rate_limited(NOW, NOW).message  # never "in 0 minutes"
    assert "(at 09:30 UTC)" in rate_limited(NOW + timedelta(minutes=30), NOW).message
