"""Retry delays as a pure schedule: capped exponential growth, optionally jittered.

Every loop in Fulmen that retries (a worker's claims, its reconnects) takes its delays from
here, so the arithmetic is tested once as a table instead of living inside each loop (STYLE.md
P4; ws-worker's ``try-with-backoff.ts`` is the counter-example). The schedule is an endless
iterator: a loop calls ``next()`` after each failure and starts a fresh iterator after a
success.

Jitter spreads out workers that fail at the same moment (a coordinator restart disconnects
them all at once): each delay is scaled down by a random fraction of up to ``jitter``, so a
jittered delay never exceeds the cap and never falls below ``(1 - jitter)`` of the plain one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["delays"]


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
    if not 0 < min_s <= max_s:
        raise ValueError(f"backoff needs 0 < min <= max, not {min_s}/{max_s}")
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, not {factor}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"backoff jitter must be between 0 and 1, not {jitter}")
    draw = rng or random.random
    delay = min_s
    while True:
        yield delay * (1 - jitter * draw()) if jitter else delay
        delay = min(delay * factor, max_s)
