"""When to push ``work-available`` to one worker (spec §4.5): plain bookkeeping, no I/O.

Lightning debounces the push with a fixed 500 ms window, so that a burst of enqueues is not a
burst of pushes. A fixed window also delays the push a worker is waiting for: a run enqueued
just after the previous push waits for the window to close before its worker hears of it,
however idle that worker is.

Here the window applies only to a worker that has not acted on its last push. A worker that
has claimed since then has read the queue; when new work arrives it is told at once. One that
has not claimed since (it is full, or its claim is on the way) is told again at most once per
window. Pushes stay bounded, at most one per claim plus one per window, and an idle worker
hears of a new run without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Nudge"]


@dataclass
class Nudge:
    """One worker socket's push state; times are a monotonic clock's seconds."""

    #: When the last push went out (never: minus infinity, so a window has always passed).
    pushed_at: float = float("-inf")
    #: The worker claimed after the last push.
    claimed: bool = False
    #: A push is already due at this time.
    due: float | None = None

    def on_work(self, now: float, window: float) -> float | None:
        """Work was enqueued: push in this many seconds (0: now), or ``None``: a push is
        already due, nothing more to do."""
        if self.due is not None:
            return None
        if self.claimed:
            return 0.0
        delay = max(0.0, self.pushed_at + window - now)
        if delay > 0:
            self.due = now + delay
        return delay

    def on_push(self, now: float) -> None:
        self.pushed_at = now
        self.claimed = False
        self.due = None

    def on_claim(self) -> None:
        self.claimed = True
