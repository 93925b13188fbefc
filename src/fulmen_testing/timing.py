"""Timing for the benchmarks in ``bench/``: figures to print, never to assert on."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

__all__ = ["best_ms"]


async def best_ms(action: Callable[[], Awaitable[object]], rounds: int = 5) -> float:
    """The fastest of ``rounds`` awaits of ``action()``, in milliseconds: the least disturbed
    by whatever else the machine did meanwhile."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await action()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)
