"""backoff: the retry schedules as tables (``delays``, ``decorrelated``), and the worker's
reconnect schedule built on the second."""

from __future__ import annotations

from itertools import islice, pairwise
from typing import Any

import pytest

from fulmen.backoff import decorrelated, delays
from fulmen.worker.connection import RECONNECT_MAX, RECONNECT_MIN, reconnect_delays


def first(n: int, schedule: object) -> list[float]:
    return [round(d, 6) for d in islice(schedule, n)]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((1, 10), {}, [1, 2, 4, 8, 10, 10]),
        ((1, 10), {"factor": 1.15}, [1, 1.15, 1.3225, 1.520875, 1.749006, 2.011357]),
        ((0.5, 0.5), {}, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
        ((2, 3), {"factor": 1}, [2, 2, 2, 2, 2, 2]),
    ],
)
def test_capped_exponential(
    args: tuple[float, float], kwargs: dict[str, Any], expected: list[float]
) -> None:
    assert first(6, delays(*args, **kwargs)) == expected


def test_ws_workers_claim_backoff_reaches_its_cap_and_stays() -> None:
    schedule = list(islice(delays(1, 10, factor=1.15), 40))
    assert schedule[-1] == 10
    assert all(a <= b for a, b in pairwise(schedule))


@pytest.mark.parametrize(("u", "expected"), [(0.0, [1, 2, 4, 4]), (0.999999, [0.5, 1, 2, 2])])
def test_jitter_shortens_by_at_most_its_fraction(u: float, expected: list[float]) -> None:
    schedule = delays(1, 4, jitter=0.5, rng=lambda: u)
    assert [round(d, 3) for d in islice(schedule, 4)] == expected


def test_jittered_delays_never_exceed_the_cap() -> None:
    assert max(islice(delays(1, 30, jitter=0.5), 200)) <= 30


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((0, 1), {}), ((2, 1), {}), ((1, 2), {"factor": 0.5}), ((1, 2), {"jitter": 1.5})],
)
def test_nonsense_is_refused(args: tuple[float, float], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        next(delays(*args, **kwargs))


# -- decorrelated jitter: the worker's reconnects (issue 14) ---------------------------------


@pytest.mark.parametrize(
    ("u", "expected"),
    [
        (0.0, [0.5, 0.5, 0.5, 0.5, 0.5]),  # the least it may draw: never below the minimum
        (0.5, [1, 1.75, 2.875, 4.5625, 5]),  # half way each time: about twofold growth
        (0.999999, [1.5, 4.5, 5, 5, 5]),  # the most: thrice the last, then the cap
    ],
)
def test_decorrelated_delays_grow_from_the_minimum_to_the_cap(
    u: float, expected: list[float]
) -> None:
    schedule = decorrelated(0.5, 5, rng=lambda: u)
    assert [round(d, 4) for d in islice(schedule, 5)] == expected


def test_decorrelated_delays_depend_on_the_previous_draw() -> None:
    draws = iter([0.0, 1.0 - 1e-9, 0.0, 0.5])
    schedule = decorrelated(1, 100, rng=lambda: next(draws))
    # 1 + u * (3 * previous - 1): previous 1 -> 1; previous 1 -> ~3; previous 3 -> 1; -> 2
    assert [round(d, 3) for d in islice(schedule, 4)] == [1, 3, 1, 2]


def test_reconnects_stay_within_half_a_second_and_five_seconds() -> None:
    """Whatever the draws: never faster than 0.5 s, never slower than 5 s (issue 14: back
    within seconds of a short outage; it used to be up to 30 s)."""
    delays_seen = list(islice(reconnect_delays(), 1000))
    assert min(delays_seen) >= RECONNECT_MIN == 0.5
    assert max(delays_seen) <= RECONNECT_MAX == 5.0


def test_the_decorrelated_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="backoff"):
        next(decorrelated(0, 1))
    with pytest.raises(ValueError, match="backoff"):
        next(decorrelated(2, 1))
