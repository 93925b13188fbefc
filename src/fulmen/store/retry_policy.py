"""Whether a run that just ended gets an automatic retry, and when. Pure: no I/O, no clock.

The store asks :func:`next_retry` in the transaction that ends a run (``run:complete`` or the
lost-run sweep), and writes the retry it describes in that same transaction, so a retry is
never lost between "the run failed" and "its retry is queued" (notes/stack-research.md §5.2).

Which endings are retried: the ones where running the same input again may well succeed.

* ``crash`` (the child died or the code could not be run), ``kill`` (a limit: time, memory)
  and ``lost`` (the worker vanished) always, when the workflow allows retries;
* ``fail`` (the job raised) only when the workflow says so (``on_fail``): a job that reports
  an error usually reports it again;
* never ``success``, ``exception`` (the platform failed before the run started, e.g. a
  credential did not load: retrying would fail the same way), ``cancelled`` (someone
  decided), nor a run someone asked to cancel, whatever it ended with.

The delays are ``fulmen.backoff``'s schedule (``backoff_ms``, doubling, capped at
``backoff_max_ms``), counted from the end of the run being retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from fulmen import backoff
from fulmen.errors import InputError
from fulmen.lifecycle import RunState
from fulmen.store.models.catalog import RetryPolicy

__all__ = ["ALWAYS_RETRIED", "MAX_RETRIES", "Retry", "check_policy", "delay", "next_retry"]

#: The final states retried whenever the workflow allows retries.
ALWAYS_RETRIED = frozenset({RunState.CRASHED, RunState.KILLED, RunState.LOST})
#: No workflow retries a run more often than this (the schema's CHECK says the same).
MAX_RETRIES = 100


@dataclass(frozen=True, slots=True)
class Retry:
    """The retry to enqueue: its attempt number and the earliest time it may be claimed."""

    attempt: int
    not_before: datetime


def next_retry(
    policy: RetryPolicy,
    *,
    state: RunState,
    attempt: int,
    ended_at: datetime,
    cancel_requested: bool = False,
) -> Retry | None:
    """The retry of a run that ended in ``state`` as attempt ``attempt``, or ``None``.

    Args:
        policy: the workflow's retry policy.
        state: the final state the run just reached.
        attempt: the run's attempt number (1 for the first run).
        ended_at: when it ended; the backoff counts from here.
        cancel_requested: someone asked to cancel it: never retried.
    """
    if cancel_requested or attempt > policy.max_retries:
        return None
    if state not in ALWAYS_RETRIED and not (policy.on_fail and state is RunState.FAILED):
        return None
    return Retry(attempt=attempt + 1, not_before=ended_at + delay(policy, attempt))


def delay(policy: RetryPolicy, retry_number: int) -> timedelta:
    """How long the ``retry_number``-th retry (1, 2, …) waits after the run it retries."""
    schedule = backoff.delays(policy.backoff_ms / 1000, policy.backoff_max_ms / 1000)
    seconds = next(islice(schedule, retry_number - 1, None))
    return timedelta(seconds=seconds)


def check_policy(policy: RetryPolicy) -> None:
    """Refuse a policy that cannot be stored (InputError naming the field)."""
    if isinstance(policy.max_retries, bool) or not 0 <= policy.max_retries <= MAX_RETRIES:
        raise InputError(f"retry.max_retries is 0 to {MAX_RETRIES}, not {policy.max_retries!r}")
    if policy.backoff_ms < 1:
        raise InputError(f"retry.backoff_ms must be positive, not {policy.backoff_ms!r}")
    if policy.backoff_max_ms < policy.backoff_ms:
        raise InputError(
            f"retry.backoff_max_ms ({policy.backoff_max_ms}) is less than retry.backoff_ms "
            f"({policy.backoff_ms})"
        )
