"""When a worker stops claiming because the run tokens it gets do not verify (issue 14).

A worker whose public key does not match the coordinator's refuses every run it claims: the
run goes back to the queue and the worker claims it again, every few seconds, for ever, while
nothing works. ws-worker stops the whole process at the first bad token (spec §3.2), which an
orchestrator restarts, and the loop goes on from there. Here:

* Each run token that does not verify counts one; each that does sets the count back to 0.
  Only refusals *in a row* count, so a single forged or stale run among good ones never stops
  a worker.
* At ``limit`` in a row the worker stops claiming (runs it has keep running), says so in one
  log line (what is wrong, what to do: ``fulmen.tokens.run_token_remedy``), and reports
  itself unhealthy (:attr:`Refusals.problem`, shown by ``/healthz`` and ``/metrics``). It
  stays connected: its runs in flight still report, and ``/livez`` still answers.
* The way back is a restart with the right key. Besides, every ``retry_after`` seconds
  (0: never) one claim for one run probes (:meth:`Refusals.probe_due`): if its token verifies,
  claiming resumes (a clock put right, a coordinator whose key was rotated to match); if not,
  the worker waits another ``retry_after``. A probe that brings no run is tried again at the
  claim loop's usual backoff.

The state is shared by every workloop of a worker (they all use its one key). The clock is
injected; nothing here waits or does I/O beyond the two log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fulmen.errors import TokenError
from fulmen.tokens import run_token_remedy

__all__ = ["Refusals"]

log = logging.getLogger(__name__)


class Refusals:
    """Run tokens refused in a row; see the module docstring.

    Args:
        limit: refusals in a row that stop claiming (at least 1).
        retry_after: seconds between probes once stopped; 0 means never.
        on_resume: called when claiming resumes (the worker nudges its claim loops).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        limit: int,
        retry_after: float,
        *,
        on_resume: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = max(limit, 1)
        self.retry_after = retry_after
        self._on_resume = on_resume
        self._clock = clock
        self.in_a_row = 0
        self.last: TokenError | None = None
        self._stopped_at: float | None = None
        self._probing = False

    @property
    def stopped(self) -> bool:
        """Whether claiming is stopped (a probe aside)."""
        return self._stopped_at is not None

    @property
    def problem(self) -> str | None:
        """Why the worker is unhealthy, for ``/healthz``; ``None`` while it claims."""
        if self.last is None or not self.stopped:
            return None
        return (
            f"claiming stopped: {self.in_a_row} run tokens in a row did not verify "
            f"({self.last.code}: {self.last.message}); {run_token_remedy(self.last.code)}"
        )

    def refused(self, error: TokenError) -> bool:
        """A run token did not verify; true if claiming stops now (the line is logged)."""
        self.in_a_row += 1
        self.last = error
        self._probing = False
        if self.stopped:
            self._stopped_at = self._clock()  # a failed probe: wait a whole period again
            return False
        if self.in_a_row < self.limit:
            return False
        self._stopped_at = self._clock()
        log.error("%s%s", self.problem, self._retry_note())
        return True

    def verified(self) -> bool:
        """A run token verified; true if claiming resumes now."""
        was_stopped = self.stopped
        self.in_a_row = 0
        self._stopped_at = None
        self._probing = False
        if was_stopped:
            log.warning("a run token verified again: claiming resumes")
            self._on_resume()
        return was_stopped

    def probe_due(self) -> bool:
        """Whether, claiming being stopped, one claim for one run may go out now."""
        return self._stopped_at is not None and self.seconds_to_probe() == 0

    def seconds_to_probe(self) -> float | None:
        """How long until a probe may go out; ``None``: none will by itself (none is ever
        made, or one is out already)."""
        if self._stopped_at is None or self.retry_after <= 0 or self._probing:
            return None
        return max(self._stopped_at + self.retry_after - self._clock(), 0.0)

    def start_probe(self) -> None:
        """A probe claim goes out: no other until its run's token is checked."""
        self._probing = True

    def probe_came_back_empty(self) -> None:
        """The probe claim brought no run (or failed): the next claim probes again."""
        self._probing = False

    def _retry_note(self) -> str:
        if self.retry_after <= 0:
            return "; claiming again needs a restart"
        return f"; one claim is tried again every {self.retry_after:g}s"
