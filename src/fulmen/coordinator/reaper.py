"""No run stays ``claimed`` or ``started`` forever: the sweeps of spec §4.6 and §7.5.

* A run claimed more than ``run_join_timeout`` ago whose channel was never joined goes back
  to the queue (the claim reply was lost, or the worker refused the token and shut down);
  workers hear ``work-available``, and the run's log says so (``refusals.unjoined_note``).
* A run in flight past ``COALESCE(started_at, claimed_at) + run timeout + grace`` is
  ``lost`` (``LostAfterClaim`` or ``LostAfterStart``), and its open steps with it; a webhook
  waiting for it is answered. The store retries it when its workflow says so (issue 8).
* A run whose cancel was asked for while a worker had it (issue 8) is cancelled again on its
  worker, if that worker's run channel is joined here: the first ``run:cancel`` may have
  been pushed by another coordinator, or lost with a socket.

Both are one set-wise statement each in the store, safe to run on every coordinator at once.
:meth:`Reaper.sweep` is one pass with the clock's time (tests call it directly);
:meth:`Reaper.run` repeats it every ``reaper_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.refusals import unjoined_note
from fulmen.errors import FulmenError
from fulmen.store import LostRun

__all__ = ["Reaper", "Sweep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    rolled_back: list[str] = field(default_factory=list)
    lost: list[LostRun] = field(default_factory=list)
    #: Runs whose worker was told (again) to cancel them.
    cancels: list[str] = field(default_factory=list)


class Reaper:
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def sweep(self) -> Sweep:
        settings = self._c.settings
        cutoff = self._c.clock.now() - timedelta(seconds=settings.run_join_timeout)
        rolled_back = await self._c.store.rollback_unjoined(cutoff, note=unjoined_note(self._c))
        lost = await self._c.store.mark_lost(
            grace=timedelta(seconds=settings.run_grace_period),
            default_timeout_ms=int(settings.max_run_duration * 1000),
        )
        if rolled_back:
            log.warning("claims never joined, back in the queue: %s", ", ".join(rolled_back))
            self._c.metrics.rolled_back.inc(len(rolled_back))
            self._c.hub.work_available()
        for run in lost:
            log.warning("run %s is lost (%s)", run.id, run.error_type)
            self._c.metrics.lost.inc()
            self._c.hub.run_finished(run.id)
        cancels = await self._c.hub.tell_cancel(await self._c.store.cancel_requested())
        return Sweep(rolled_back, lost, cancels)

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except FulmenError as error:
                log.error("the reaper's sweep failed: %s", error)
            await asyncio.sleep(self._c.settings.reaper_interval)
