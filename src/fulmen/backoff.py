"""Retry delays as a pure schedule: capped exponential growth, optionally jittered.

Every loop in Fulmen that retries (a worker's claims, its reconnects) takes its delays from
here, so the arithmetic is tested once as a table instead of living inside each loop (STYLE.md
P4; ws-worker's ``try-with-backoff.ts`` is the counter-example). The schedule is an endless
iterator: a loop calls ``next()`` after each failure and starts a fresh iterator after a
success.

Jitter spreads out workers that fail at the same moment (a coordinator restart disconnects
them all at once): each delay is scaled down by a random fraction of up to ``jitter``, so a
jittered delay never exceeds the cap and never falls below ``(1 - jitter)`` of the plain one.

:func:`decorrelated` is the other schedule: "decorrelated jitter" (Marc Brooker, *Exponential
Backoff And Jitter*, AWS Architecture Blog, 2015), where each delay is drawn between the
minimum and three times the previous one. It grows about as fast as doubling, but two
workers that failed together draw apart at once and stay apart, where a scaled-down doubling
keeps them within a factor of ``1 - jitter`` of each other: the worker's reconnects use it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["decorrelated", "delays"]


def _check(min_s: float, max_s: float) -> None:
    if not 0 < min_s <= max_s:
        raise ValueError(f"backoff needs 0 < min <= max, not {min_s}/{max_s}")


def delays(
    min_s: float,
    max_s: float,
    *,
    factor: float = 2.0,
    jitter: float = 0.0,
    rng: Callable[[], float] | None = None,
) -> Iterator[float]:
    """Yield ``min_s``, ``min_s * factor``, … capped at ``max_s``, forever.

    Args:
        min_s: the first delay, in seconds (> 0).
        max_s: the cap (>= ``min_s``).
        factor: growth per attempt (>= 1); ws-worker's claim loop uses 1.15 (spec §10.3).
        jitter: 0 for none, up to 1: each delay is multiplied by ``1 - jitter * u``.
        rng: returns ``u`` in [0, 1); ``random.random`` by default. Tests pass a constant.

    Raises:
        ValueError: for arguments outside those ranges.
    """
    _check(min_s, max_s)
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, not {factor}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"backoff jitter must be between 0 and 1, not {jitter}")
    draw = rng or random.random
    delay = min_s
    while True:
        yield delay * (1 - jitter * draw()) if jitter else delay
        delay = min(delay * factor, max_s)


def decorrelated(
    min_s: float, max_s: float, *, rng: Callable[[], float] | None = None
) -> Iterator[float]:
    """Yield delays drawn between ``min_s`` and three times the previous delay (the first
    between ``min_s`` and ``3 * min_s``), capped at ``max_s``, forever.

    Every delay lies in ``[min_s, max_s]``, so a loop that uses it never retries faster than
    ``min_s`` nor waits longer than ``max_s``.

    Args:
        min_s: the shortest delay, in seconds (> 0).
        max_s: the cap (>= ``min_s``).
        rng: returns ``u`` in [0, 1); the delay is ``min_s + u * (3 * previous - min_s)``.
            ``random.random`` by default. Tests pass a constant.

    Raises:
        ValueError: unless ``0 < min_s <= max_s``.
    """
    _check(min_s, max_s)
    draw = rng or random.random
    previous = min_s
    while True:
        previous = min(max_s, min_s + draw() * (3 * previous - min_s))
        yield previous
