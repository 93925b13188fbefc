"""backoff.delays: the retry schedule as a table."""

from __future__ import annotations

from itertools import islice, pairwise
from typing import Any

import pytest

from fulmen.backoff import delays


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
