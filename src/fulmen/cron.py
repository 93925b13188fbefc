"""Cron expressions with an IANA time zone: when does a schedule fire next? Pure, no clock.

A thin wrapper over ``cronsim`` (notes/stack-research.md §1.4: small, maintained, written to
match Debian cron including its behaviour across daylight-saving changes), so that the library
can be swapped without touching the scheduler. What the wrapper adds:

* Only the classic 5 fields (minute hour day-of-month month day-of-week) and the ``@hourly``,
  ``@daily``, ``@weekly``, ``@monthly``, ``@yearly`` (``@annually``) shorthands; cronsim's
  6-field "seconds" form is refused, as Lightning refuses it.
* Times go in and come out aware and in UTC; the zone only decides what the fields mean.
* ``next_fire`` is *strictly* after the given instant, even in the repeated hour of a
  fall-back change, where Debian-cron semantics can name a wall-clock time that comes earlier
  than the instant asked about (cronsim then answers with the first of the two; we skip it).

DST, as Debian cron does it (cronsim's docs): a job at a fixed time that falls in the hour
skipped by a spring-forward runs once, at the first valid minute after the gap; a job at a
fixed time in the repeated hour of a fall-back runs once, at the first occurrence. Jobs with
``*`` in the minute or hour field follow real (UTC) time through both changes.

:func:`describe` says a schedule in English words for the dashboard, through
``cron-descriptor`` (maintained, no dependencies beyond typing_extensions, and it knows
the extensions cronsim takes: ``L``, ``W``, ``MON#1``); writing that prose ourselves would be
a second cron parser to keep in step with the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cron_descriptor import (
    ExpressionDescriptor,
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
)
from cronsim import CronSim, CronSimError

from fulmen.errors import InputError

__all__ = ["SHORTHANDS", "CronSpec", "describe", "last_fire", "next_fire", "next_fires", "parse"]

SHORTHANDS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A checked schedule. ``expression`` is the 5-field form (shorthands expanded)."""

    expression: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def parse(expression: str, timezone: str | None = None) -> CronSpec:
    """Check a cron expression and an IANA zone name (``None``: UTC).

    Raises:
        InputError: ``bad_cron`` naming what is wrong, or ``bad_timezone``.
    """
    text = " ".join(expression.split())
    text = SHORTHANDS.get(text.lower(), text)
    if len(text.split(" ")) != 5:
        raise InputError(
            f"a cron expression has 5 fields (minute hour day month weekday), not {expression!r}",
            code="bad_cron",
        )
    zone_name = timezone or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{zone_name!r} is not an IANA time zone", code="bad_timezone") from None
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=zone))
    except CronSimError as error:
        raise InputError(f"{expression!r}: {error}", code="bad_cron") from None
    return CronSpec(text, zone_name)


def next_fire(spec: CronSpec, after: datetime) -> datetime:
    """The first time strictly after ``after`` (aware) at which ``spec`` fires, in UTC.

    Raises:
        InputError: ``never_fires`` if no time in the next 50 years matches (``30 2 31 2 *``).
    """
    local = _aware(after).astimezone(spec.zone)
    try:
        for candidate in CronSim(spec.expression, local):
            moment = candidate.astimezone(UTC)
            if moment > after:
                return moment
    except StopIteration:  # pragma: no cover - CronSim ends iteration itself
        pass
    raise InputError(f"{spec.expression!r} never fires", code="never_fires")


def next_fires(spec: CronSpec, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` fire times strictly after ``after``, in UTC (fewer if it stops).

    Raises:
        InputError: ``never_fires``, as :func:`next_fire`.
    """
    fires: list[datetime] = []
    moment = after
    while len(fires) < count:
        moment = next_fire(spec, moment)
        fires.append(moment)
    return fires


def describe(spec: CronSpec) -> str | None:
    """The schedule in words, 24-hour clock, in the schedule's own zone ("At 09:00, Monday
    through Friday"); ``None`` when cron-descriptor cannot put it in words (cronsim took it,
    so it is valid: the page then shows only the expression and its fire times)."""
    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = "en_US"
    try:
        return str(ExpressionDescriptor(spec.expression, options).get_description())
    except (
        FormatException,
        MissingFieldException,
        WrongArgumentException,
        LookupError,
        ValueError,
    ):
        return None


def last_fire(spec: CronSpec, at_or_before: datetime) -> datetime | None:
    """The latest fire time not after ``at_or_before``, in UTC; ``None`` if none in 50 years.

    Found as the last fire whose successor is after ``at_or_before``, so that it agrees with
    :func:`next_fire` in the repeated hour of a fall-back change.
    """
    moment = _aware(at_or_before)
    local = moment.astimezone(spec.zone)
    for candidate in CronSim(spec.expression, local.replace(microsecond=0), reverse=True):
        earlier = candidate.astimezone(UTC)
        # reverse iteration starts one second back; the instant itself may be a fire time
        if earlier <= moment and next_fire(spec, earlier) > moment:
            return earlier
        if earlier <= moment:
            # ``earlier`` is followed by another fire before ``moment``: that one is the answer
            return _latest_between(spec, earlier, moment)
    return None


def _latest_between(spec: CronSpec, start: datetime, end: datetime) -> datetime:
    latest = start
    while (candidate := next_fire(spec, latest)) <= end:
        latest = candidate
    return latest


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InputError("cron times must carry a time zone", code="naive_time")
    return moment
