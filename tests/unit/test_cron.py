"""fulmen.cron: parsing, and next/last fire times that hold across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulmen.cron import CronSpec, describe, last_fire, next_fire, next_fires, parse
from fulmen.errors import InputError

#: Zones with DST changes of every kind: northern and southern hemisphere, a 30-minute shift
#: (Lord Howe), none at all (UTC).
ZONES = ["Europe/Riga", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "UTC"]
EXPRESSIONS = [
    "* * * * *",
    "*/15 * * * *",
    "30 2 * * *",  # in the spring-forward gap in New York and Riga
    "30 1 * * *",  # in the fall-back repeat in New York
    "0 3 * * *",
    "15 */2 * * *",
    "0 0 * * 1-5",
    "45 23 L * *",
    "0 12 1 */3 *",
]

#: Instants spread over years, so that each zone's DST changes are crossed many times.
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
specs = st.builds(parse, st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@given(specs, instants)
@settings(max_examples=300, deadline=None)
def test_next_fire_is_strictly_later_and_the_first_such(spec: CronSpec, after: datetime) -> None:
    fire = next_fire(spec, after)
    assert fire > after
    assert fire.tzinfo is UTC
    # Nothing fires in between: asking from any instant before it gives the same answer.
    for fraction in (0.25, 0.5, 0.999):
        between = after + (fire - after) * fraction
        assert next_fire(spec, between) == fire


@given(specs, instants)
@settings(max_examples=200, deadline=None)
def test_fires_never_repeat_and_last_fire_agrees(spec: CronSpec, start: datetime) -> None:
    fires = [next_fire(spec, start)]
    for _ in range(5):
        fires.append(next_fire(spec, fires[-1]))
    assert fires == sorted(set(fires))
    for earlier, later in pairwise(fires):
        assert last_fire(spec, later - timedelta(microseconds=1)) == earlier
        assert last_fire(spec, later) == later


@given(st.sampled_from(["America/New_York", "Europe/Riga", "Australia/Sydney"]), instants)
@settings(max_examples=60, deadline=None)
def test_a_daily_job_fires_once_every_local_day(zone: str, start: datetime) -> None:
    spec = parse("30 2 * * *", zone)
    fires = [next_fire(spec, start)]
    while len(fires) < 400:
        fires.append(next_fire(spec, fires[-1]))
    days = [fire.astimezone(spec.zone).date() for fire in fires]
    assert len(days) == len(set(days))
    assert days[-1] - days[0] == timedelta(days=len(days) - 1)  # no local day skipped


def test_spring_forward_gap_runs_at_the_first_minute_after_it() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    spec = parse("30 2 * * *", "America/New_York")
    fire = next_fire(spec, utc(2026, 3, 8, 5, 0))
    assert fire.astimezone(spec.zone).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 0)


def test_fall_back_repeat_runs_once() -> None:
    # New York, 2026-11-01: 01:30 happens twice (EDT, then EST); the job runs at the first.
    spec = parse("30 1 * * *", "America/New_York")
    first = next_fire(spec, utc(2026, 11, 1, 4, 0))
    assert first == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert next_fire(spec, first).astimezone(spec.zone).date() == date(2026, 11, 2)


def test_every_quarter_hour_follows_real_time_through_fall_back() -> None:
    spec = parse("*/15 * * * *", "America/New_York")
    start = utc(2026, 11, 1, 5, 0)  # 01:00 EDT
    fires = [next_fire(spec, start)]
    while fires[-1] < utc(2026, 11, 1, 7, 0):
        fires.append(next_fire(spec, fires[-1]))
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(fires))


@pytest.mark.parametrize(
    ("text", "expanded"),
    [("@daily", "0 0 * * *"), ("@HOURLY", "0 * * * *"), ("  5   4 * * sun ", "5 4 * * sun")],
)
def test_shorthands_and_spacing(text: str, expanded: str) -> None:
    assert parse(text).expression == expanded


@pytest.mark.parametrize(
    ("expression", "zone", "code"),
    [
        ("* * * *", None, "bad_cron"),
        ("0 * * * * *", None, "bad_cron"),  # cronsim's seconds field is not cron
        ("61 * * * *", None, "bad_cron"),
        ("* * * * *", "Mars/Olympus", "bad_timezone"),
        ("* * * * *", "../etc/passwd", "bad_timezone"),
    ],
)
def test_bad_expressions_are_input_errors(expression: str, zone: str | None, code: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(expression, zone)
    assert caught.value.code == code


def test_naive_times_are_refused() -> None:
    with pytest.raises(InputError):
        next_fire(parse("* * * * *"), datetime(2026, 1, 1))


# -- what the dashboard shows of a schedule ----------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 9 * * 1-5", "At 09:30, Monday through Friday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("@daily", "At 00:00"),
        ("45 23 L * *", "At 23:45, on the last day of the month"),
        ("0 9 * * MON#1", "At 09:00, on the first Monday of the month"),
    ],
)
def test_describe_says_a_schedule_in_words_on_a_24_hour_clock(expression: str, words: str) -> None:
    assert describe(parse(expression, "Europe/Paris")) == words


def test_next_fires_are_in_order_and_each_the_next_of_the_one_before() -> None:
    spec = parse("30 2 * * *", "America/New_York")  # across the 2024-03-10 spring-forward gap
    after = datetime(2024, 3, 8, 12, tzinfo=UTC)
    fires = next_fires(spec, after, 5)
    assert len(fires) == 5
    assert fires[0] == next_fire(spec, after)
    for earlier, later in pairwise(fires):
        assert later == next_fire(spec, earlier)
    assert [f.astimezone(spec.zone).strftime("%d %H:%M") for f in fires] == [
        "09 02:30",
        "10 03:00",  # 02:30 does not exist that day: the first valid minute after the gap
        "11 02:30",
        "12 02:30",
        "13 02:30",
    ]
