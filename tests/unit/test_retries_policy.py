"""fulmen.store.retry_policy: which endings are retried, how often, and after how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fulmen.errors import InputError
from fulmen.lifecycle import RunState
from fulmen.store import RetryPolicy
from fulmen.store.retry_policy import Retry, check_policy, delay, next_retry

S = RunState
END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TWO = RetryPolicy(max_retries=2, backoff_ms=1000, backoff_max_ms=3000)
ON_FAIL = RetryPolicy(max_retries=2, backoff_ms=1000, backoff_max_ms=3000, on_fail=True)


@pytest.mark.parametrize(
    ("policy", "state", "attempt", "cancelled", "expected"),
    [
        (TWO, S.CRASHED, 1, False, Retry(2, END + timedelta(seconds=1))),
        (TWO, S.KILLED, 2, False, Retry(3, END + timedelta(seconds=2))),
        (TWO, S.LOST, 1, False, Retry(2, END + timedelta(seconds=1))),
        (TWO, S.CRASHED, 3, False, None),  # two retries made: the third attempt was the last
        (TWO, S.FAILED, 1, False, None),  # fail only when asked
        (ON_FAIL, S.FAILED, 1, False, Retry(2, END + timedelta(seconds=1))),
        (ON_FAIL, S.CRASHED, 1, False, Retry(2, END + timedelta(seconds=1))),
        (TWO, S.EXCEPTION, 1, False, None),  # the platform failed before the run: not again
        (TWO, S.CANCELLED, 1, False, None),
        (TWO, S.SUCCESS, 1, False, None),
        (TWO, S.CRASHED, 1, True, None),  # someone asked to cancel it
        (RetryPolicy(), S.CRASHED, 1, False, None),  # retries are off by default
    ],
)
def test_next_retry(
    policy: RetryPolicy, state: RunState, attempt: int, cancelled: bool, expected: Retry | None
) -> None:
    got = next_retry(policy, state=state, attempt=attempt, ended_at=END, cancel_requested=cancelled)
    assert got == expected


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (TWO, [1, 2, 3, 3]),  # doubling, capped
        (RetryPolicy(max_retries=5, backoff_ms=250, backoff_max_ms=250), [0.25, 0.25, 0.25]),
        (RetryPolicy(max_retries=5, backoff_ms=10_000, backoff_max_ms=600_000), [10, 20, 40, 80]),
    ],
)
def test_delays_double_up_to_the_cap(policy: RetryPolicy, delays: list[float]) -> None:
    got = [delay(policy, n).total_seconds() for n in range(1, len(delays) + 1)]
    assert got == delays


@pytest.mark.parametrize(
    ("policy", "words"),
    [
        (RetryPolicy(max_retries=-1), "max_retries"),
        (RetryPolicy(max_retries=101), "max_retries"),
        (RetryPolicy(max_retries=True), "max_retries"),
        (RetryPolicy(backoff_ms=0), "backoff_ms"),
        (RetryPolicy(backoff_ms=5000, backoff_max_ms=1000), "backoff_max_ms"),
    ],
)
def test_unusable_policies_are_refused(policy: RetryPolicy, words: str) -> None:
    with pytest.raises(InputError, match=words):
        check_policy(policy)
    check_policy(RetryPolicy(max_retries=100))
