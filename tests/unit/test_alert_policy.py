"""fulmen.store.alert_policy as tables: which endings alert, when an alert is due and what it
folds, when digests fall and what they cover, when a failed delivery is tried again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fulmen.errors import InputError
from fulmen.lifecycle import RunState
from fulmen.store import DigestFrequency
from fulmen.store.alert_policy import (
    ALERTABLE,
    DEFAULT_OUTCOMES,
    DeliveryPolicy,
    Ending,
    Folded,
    check_outcomes,
    check_period,
    decide,
    digest_window,
    fold,
    new_secret,
    next_digest_at,
    retry_at,
    secret_key,
)

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
PERIOD = timedelta(minutes=5)


def ending(n: int, outcome: RunState = RunState.FAILED, error: str | None = "E") -> Ending:
    return Ending(f"r{n}", outcome, error, T0 + timedelta(seconds=n))


def test_the_issues_words_are_the_default_outcomes() -> None:
    assert {s.value for s in DEFAULT_OUTCOMES} == {"failed", "crashed", "killed", "lost"}
    assert {s.value for s in ALERTABLE} == {
        "failed",
        "crashed",
        "killed",
        "lost",
        "exception",
        "cancelled",
    }


@pytest.mark.parametrize(
    ("last_alert", "pending", "now", "sends"),
    [
        # (seconds before T0 of the last alert or None, endings pending, seconds after T0, count)
        (None, 0, 0, None),  # nothing ended
        (None, 1, 0, 1),  # the first failure: alerted at once
        (None, 20, 0, 20),  # a burst seen at once: one alert for all
        (60, 19, 0, None),  # an alert a minute ago: folded, wait
        (300, 19, 0, 19),  # exactly one period since: the follow-up with the 19
        (299, 19, 0, None),  # a second short
        (60, 19, 240, 19),  # the same, four minutes later
        (3600, 1, 0, 1),  # long quiet: alerted at once
        (60, 0, 3600, None),  # period over but nothing pending
    ],
)
def test_an_alert_is_due_once_per_period_and_folds_everything_pending(
    last_alert: int | None, pending: int, now: int, sends: int | None
) -> None:
    last = None if last_alert is None else T0 - timedelta(seconds=last_alert)
    endings = [ending(n) for n in range(pending)]
    made = decide(last, PERIOD, endings, T0 + timedelta(seconds=now))
    assert (made.count if made else None) == sends


def test_what_a_fold_says() -> None:
    endings = [
        ending(3, RunState.LOST, "LostAfterStart"),
        ending(1),
        ending(2, RunState.CRASHED, None),
        ending(4),
    ]
    assert fold(endings) == Folded(
        count=4,
        first_run_id="r1",
        last_run_id="r4",
        first_ended_at=T0 + timedelta(seconds=1),
        last_ended_at=T0 + timedelta(seconds=4),
        outcomes={"failed": 2, "crashed": 1, "lost": 1},
        error_types={"E": 2, "none": 1, "LostAfterStart": 1},
    )
    with pytest.raises(ValueError):
        fold([])


@pytest.mark.parametrize(
    ("outcomes", "ok"),
    [
        (["failed"], True),
        (["failed", "lost", "cancelled", "exception"], True),
        ([], False),
        (["success"], False),
        (["fail"], False),  # the exit reason's word, not the run state's
        (["available"], False),
    ],
)
def test_outcomes_are_final_states_but_success(outcomes: list[str], ok: bool) -> None:
    if ok:
        assert {s.value for s in check_outcomes(outcomes)} == set(outcomes)
    else:
        with pytest.raises(InputError) as refused:
            check_outcomes(outcomes)
        assert refused.value.field == "outcomes"


@pytest.mark.parametrize(
    ("seconds", "ok"), [(1, True), (604_800, True), (0, False), (604_801, False)]
)
def test_periods_are_a_second_to_a_week(seconds: int, ok: bool) -> None:
    if ok:
        assert check_period(seconds) == seconds
    else:
        with pytest.raises(InputError):
            check_period(seconds)


@pytest.mark.parametrize(
    ("frequency", "after", "due"),
    [
        (DigestFrequency.OFF, "2026-03-04T12:00", None),
        (DigestFrequency.DAILY, "2026-03-04T12:00", "2026-03-05T00:00"),
        (DigestFrequency.DAILY, "2026-03-04T00:00", "2026-03-05T00:00"),  # strictly after
        (DigestFrequency.DAILY, "2026-12-31T23:59", "2027-01-01T00:00"),
        (DigestFrequency.WEEKLY, "2026-03-04T12:00", "2026-03-09T00:00"),  # Wed -> Mon
        (DigestFrequency.WEEKLY, "2026-03-08T23:59", "2026-03-09T00:00"),  # Sun -> Mon
        (DigestFrequency.WEEKLY, "2026-03-09T00:00", "2026-03-16T00:00"),  # Mon -> next Mon
    ],
)
def test_digests_fall_at_midnight_utc_and_on_mondays(
    frequency: DigestFrequency, after: str, due: str | None
) -> None:
    moment = datetime.fromisoformat(after).replace(tzinfo=UTC)
    expected = None if due is None else datetime.fromisoformat(due).replace(tzinfo=UTC)
    assert next_digest_at(frequency, moment) == expected


def test_a_digest_covers_the_period_before_it_is_due() -> None:
    due = datetime(2026, 3, 9, tzinfo=UTC)
    assert digest_window(DigestFrequency.DAILY, due) == (due - timedelta(days=1), due)
    assert digest_window(DigestFrequency.WEEKLY, due) == (due - timedelta(days=7), due)
    with pytest.raises(ValueError):
        digest_window(DigestFrequency.OFF, due)


@pytest.mark.parametrize(
    ("attempts", "after"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (9, 3600), (10, None)],
)
def test_a_failed_delivery_backs_off_until_the_last_attempt(
    attempts: int, after: int | None
) -> None:
    policy = DeliveryPolicy(min_s=30, max_s=3600, max_attempts=10)
    expected = None if after is None else T0 + timedelta(seconds=after)
    assert retry_at(policy, attempts, T0) == expected


def test_webhook_secrets_are_standard_webhooks_ones() -> None:
    key = bytes(range(32))
    secret = new_secret(key)
    assert secret.startswith("whsec_") and secret_key(secret) == key
    for bad in ["whsec_", "whsec_not base64!", "abc", "whsec_" + new_secret(b"x" * 8)[6:]]:
        with pytest.raises(InputError) as refused:
            secret_key(bad)
        assert refused.value.field == "secret"
