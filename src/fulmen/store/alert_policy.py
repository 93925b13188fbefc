"""What an alert says and when one is due. Pure: no I/O, no clock.

**Which endings alert.** Issue 18 names four words; they are the final run states of
``fulmen.lifecycle``, by the exit reason that lands on them (``RUN_STATE_FOR_REASON``):

=============  ==============  =================================================
issue's word   run state        meaning
=============  ==============  =================================================
``fail``       ``failed``       the job raised (exit reason ``fail``)
``crash``      ``crashed``      the child died, or the code could not run
``kill``       ``killed``       a limit stopped it (time, memory)
``lost``       ``lost``         the worker vanished (the reaper's sweep, §7.5)
=============  ==============  =================================================

These four are :data:`DEFAULT_OUTCOMES`. A rule may also choose ``exception`` (the platform
failed around the run: a credential did not load) and ``cancelled`` (someone cancelled it);
never ``success``. Rules name run states, the words the REST API shows runs with.

**Folding** (:func:`decide`). At most one alert per workflow per period: an alert is due when
there are pending endings and none was made within the period (``last_alert_at + period <=
now``). Every ending pending then is folded into that one alert, which carries their count,
the first and last run, and how many ended in each state and with each error type. So a
burst of 20 failures gives one alert at once (for the first, or for however many had ended
when the dispatcher looked) and at most one more after the period, for the rest.

**Digests** (:func:`next_digest_at`, :func:`digest_window`): daily at 00:00 UTC about the day
before, weekly on Monday 00:00 UTC about the week before. A digest late by more than its
period (every coordinator down) is made once, about the period before it was due, and the
next one is the first due time after now: no catch-up burst.

**Retries** (:func:`retry_at`): a delivery that failed is tried again after
``fulmen.backoff.delays(min, max)``'s n-th delay, until ``max_attempts`` tries.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import islice

from fulmen import backoff
from fulmen.errors import InputError
from fulmen.lifecycle import FINAL_RUN_STATES, RunState
from fulmen.store.models.alerts import DigestFrequency

__all__ = [
    "ALERTABLE",
    "DEFAULT_OUTCOMES",
    "DEFAULT_PERIOD_SECONDS",
    "MAX_PERIOD_SECONDS",
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "DeliveryPolicy",
    "Ending",
    "Folded",
    "alert_due",
    "check_outcomes",
    "check_period",
    "decide",
    "digest_window",
    "fold",
    "new_secret",
    "next_digest_at",
    "retry_at",
    "secret_key",
]

#: The issue's ``fail``, ``crash``, ``kill`` and ``lost``: what a new rule alerts on.
DEFAULT_OUTCOMES = frozenset({RunState.FAILED, RunState.CRASHED, RunState.KILLED, RunState.LOST})
#: What a rule may alert on: every final state but success.
ALERTABLE = frozenset(FINAL_RUN_STATES - {RunState.SUCCESS})
DEFAULT_PERIOD_SECONDS = 300
#: A week: a longer period would hide a workflow failing for good.
MAX_PERIOD_SECONDS = 7 * 86_400

_PERIODS = {DigestFrequency.DAILY: timedelta(days=1), DigestFrequency.WEEKLY: timedelta(days=7)}


@dataclass(frozen=True, slots=True)
class Ending:
    """A run that ended in one of its workflow's alert outcomes (an ``alert_endings`` row)."""

    run_id: str
    outcome: RunState
    error_type: str | None
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class Folded:
    """What one alert says about the endings folded into it."""

    count: int
    first_run_id: str
    last_run_id: str
    first_ended_at: datetime
    last_ended_at: datetime
    #: How many ended in each state, and with each error type (``None``: none given).
    outcomes: dict[str, int]
    error_types: dict[str, int]


def check_outcomes(outcomes: Iterable[str]) -> frozenset[RunState]:
    """The outcomes as run states: at least one, each in :data:`ALERTABLE`.

    Raises:
        InputError: ``field="outcomes"``, naming the value and the states allowed.
    """
    states: set[RunState] = set()
    allowed = ", ".join(sorted(ALERTABLE))
    for outcome in outcomes:
        if outcome not in ALERTABLE:
            raise InputError(
                f"an alert outcome is one of {allowed}, not {outcome!r}", field="outcomes"
            )
        states.add(RunState(outcome))
    if not states:
        raise InputError(f"choose at least one outcome of {allowed}", field="outcomes")
    return frozenset(states)


def check_period(seconds: int) -> int:
    if isinstance(seconds, bool) or not 0 < seconds <= MAX_PERIOD_SECONDS:
        raise InputError(
            f"the alert period is 1 to {MAX_PERIOD_SECONDS} seconds, not {seconds!r}",
            field="period_seconds",
        )
    return seconds


def alert_due(last_alert_at: datetime | None, period: timedelta, now: datetime) -> bool:
    """Whether a workflow whose latest alert was made at ``last_alert_at`` may have another."""
    return last_alert_at is None or last_alert_at + period <= now


def fold(endings: Sequence[Ending]) -> Folded:
    """Summarise ``endings`` (in the order they ended) as one alert.

    Raises:
        ValueError: no endings (there is nothing to alert about).
    """
    if not endings:
        raise ValueError("an alert folds at least one ending")
    ordered = sorted(endings, key=lambda e: e.ended_at)
    return Folded(
        count=len(ordered),
        first_run_id=ordered[0].run_id,
        last_run_id=ordered[-1].run_id,
        first_ended_at=ordered[0].ended_at,
        last_ended_at=ordered[-1].ended_at,
        outcomes=dict(Counter(e.outcome.value for e in ordered)),
        error_types=dict(Counter(e.error_type or "none" for e in ordered)),
    )


def decide(
    last_alert_at: datetime | None, period: timedelta, pending: Sequence[Ending], now: datetime
) -> Folded | None:
    """The alert to make now, folding every pending ending; ``None`` while the period of the
    latest alert lasts, or when nothing is pending."""
    if not pending or not alert_due(last_alert_at, period, now):
        return None
    return fold(pending)


def next_digest_at(frequency: DigestFrequency, after: datetime) -> datetime | None:
    """The first digest time strictly after ``after``: the next 00:00 UTC (``daily``), or the
    next Monday's (``weekly``); ``None`` when ``off``."""
    if frequency is DigestFrequency.OFF:
        return None
    after = after.astimezone(UTC)
    midnight = datetime.combine(after.date(), time(0), tzinfo=UTC)
    step = timedelta(days=1)
    moment = midnight + step
    if frequency is DigestFrequency.WEEKLY:
        moment += timedelta(days=(7 - moment.weekday()) % 7)
    return moment


def digest_window(frequency: DigestFrequency, due_at: datetime) -> tuple[datetime, datetime]:
    """The period a digest due at ``due_at`` covers: ``[start, end)``.

    Raises:
        ValueError: ``off`` has no period.
    """
    if frequency is DigestFrequency.OFF:
        raise ValueError("a digest that is off covers no period")
    return due_at - _PERIODS[frequency], due_at


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How a failed delivery is retried: ``fulmen.backoff.delays(min_s, max_s)``, for at most
    ``max_attempts`` tries in all."""

    min_s: float = 30.0
    max_s: float = 3600.0
    max_attempts: int = 10


def retry_at(policy: DeliveryPolicy, attempts: int, now: datetime) -> datetime | None:
    """When a delivery whose try number ``attempts`` (from 1) just failed is tried again;
    ``None``: that was the last try."""
    if attempts >= policy.max_attempts:
        return None
    delay = next(islice(backoff.delays(policy.min_s, policy.max_s), attempts - 1, None))
    return now + timedelta(seconds=delay)


#: Standard Webhooks' secret format: this prefix, then base64 of the key's bytes.
SECRET_PREFIX = "whsec_"
#: A made secret's key: 32 random bytes (HMAC-SHA256's block of security).
SECRET_BYTES = 32
_SECRET_LENGTHS = range(24, 65)


def new_secret(key: bytes) -> str:
    """A webhook channel's secret for the random ``key`` bytes, as Standard Webhooks writes it."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret.

    Raises:
        InputError: ``field="secret"``: not the prefix and base64 of 24 to 64 bytes.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) not in _SECRET_LENGTHS:
        raise InputError(
            f"a webhook secret is {SECRET_PREFIX} and the base64 of {_SECRET_LENGTHS.start} to "
            f"{_SECRET_LENGTHS.stop - 1} random bytes (leave it out to have one made)",
            field="secret",
        )
    return key
