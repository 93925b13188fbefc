"""``worker:queue``: workers join it, claim runs on it, and hear ``work-available`` (§4).

A claim is answered with the runs the store handed out, each with a run token (§3.1) valid for
the run's timeout plus the grace period. If the answer cannot reach the worker (its socket went
while the store was claiming), the runs go straight back to the queue (§4.3 "rollback");
runs whose answer arrived but whose channel is never joined are the reaper's (§4.6). A
worker that refuses a run it claimed says so with ``run:refuse`` (Fulmen's own, listed in the
join's answer; ``coordinator/refusals.py``): the run goes back at once.

A claim that asks to ``fetch`` (Fulmen's worker, ``CLAIM_FETCHES``) gets each run's plan and
input beside its token, and joins the runs in the claim's own transaction: the worker starts
them at once and joins ``run:<id>`` only to report (with its first frame inside the join,
``JOIN_REPORTS``). The reaper never takes such a run back as unjoined; a lost answer and a
refusal still do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from fulmen.contract import (
    CLAIM_FETCHES,
    JOIN_FETCHES,
    JOIN_REPORTS,
    JSON,
    ClaimedRun,
    ClaimRequest,
    Event,
    QueueJoin,
    QueueJoined,
)
from fulmen.coordinator.channels.answers import error_response, json_payload
from fulmen.coordinator.channels.base import Host
from fulmen.coordinator.channels.fetched import claimed
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.refusals import take_refusal
from fulmen.errors import ContractError, FulmenError
from fulmen.phoenix.server import JoinRequest, Request
from fulmen.store import ClaimedRun as StoredClaim

__all__ = ["MAX_DEMAND", "QueueChannel"]

log = logging.getLogger(__name__)

#: A claim asks for at most this many runs (ws-worker always asks for 1).
MAX_DEMAND: Final = 100
#: The join's answer: what this coordinator takes beyond what every Lightning takes.
JOINED: Final = QueueJoined(
    accepts=frozenset(
        {
            Event.RUN_BATCH_LOGS,
            Event.RUN_REFUSE,
            Event.RUN_REPORTS,
            JOIN_FETCHES,
            CLAIM_FETCHES,
            JOIN_REPORTS,
        }
    )
).to_wire()


class QueueChannel:
    def __init__(
        self,
        host: Host,
        coordinator: Coordinator,
        on_claim: Callable[[tuple[str, ...]], None] = lambda languages: None,
    ) -> None:
        """``on_claim``: called with the languages the claimer runs once each claim is
        answered (the hub's push bookkeeping, and what it knows its workers run)."""
        self._host = host
        self._c = coordinator
        self._on_claim = on_claim

    async def join(self, join: JoinRequest) -> bool:
        # §4.1: Lightning ignores the join payload; we only log what the worker offers.
        try:
            offer = QueueJoin.from_wire(join.payload)
            log.info("worker %s joined the queue: %s", self._host.worker_id, offer.to_wire())
        except ContractError as error:
            log.info(
                "worker %s joined the queue (payload ignored: %s)", self._host.worker_id, error
            )
        return await self._host.accept(join, JOINED)

    def left(self) -> None:
        return None

    async def handle(self, request: Request) -> None:
        if request.event == Event.RUN_REFUSE:
            ok, response = await take_refusal(self._c, self._host.worker_id, request.payload)
            await self._host.reply(request, ok, response)
            return
        if request.event != Event.CLAIM:
            await self._host.reply(request, False, f"worker:queue has no {request.event!r} event")
            return
        started = time.perf_counter()
        runs: list[StoredClaim] = []
        try:
            claim = ClaimRequest.from_wire(json_payload(request.payload))
            runs = await self._c.store.claim(
                min(claim.demand, MAX_DEMAND),
                claim.queue_preference,
                claim.worker_name,
                join=bool(claim.fetch),
                languages=claim.runs_languages,
            )
            reply: JSON = {
                "runs": [(await self._entry(run, claim.fetch)).to_wire() for run in runs]
            }
        except FulmenError as error:
            if runs:  # claimed, but its answer could not be made: nobody will run them
                await self._roll_back(runs)
            await self._host.reply(request, False, error_response(Event.CLAIM, error))
            return
        delivered = await self._host.reply(request, True, reply)
        self._on_claim(claim.runs_languages)
        self._c.metrics.claim_seconds.observe(time.perf_counter() - started)
        if runs and not delivered:
            await self._roll_back(runs)
        elif runs:
            for run in runs:
                self._c.hub.changes.changed(run.id)
            self._c.metrics.claimed.inc(len(runs))
            log.info("worker %s claimed %s", self._host.worker_id, ", ".join(r.id for r in runs))

    async def _entry(self, run: StoredClaim, fetch: tuple[str, ...]) -> ClaimedRun:
        """The run as the claim's answer lists it: its token, and what ``fetch`` asked for."""
        token = self._token(run)
        if not fetch:
            return ClaimedRun(run.id, token)
        return ClaimedRun(run.id, token, await claimed(self._c, run.id, run.dataclip_id, fetch))

    def _token(self, run: StoredClaim) -> str:
        timeout_ms = run.run_timeout_ms or int(self._c.settings.max_run_duration * 1000)
        return self._c.run_tokens.mint(
            run.id,
            now=self._c.now(),
            run_timeout=timeout_ms / 1000,
            grace=self._c.settings.run_grace_period,
        )

    async def _roll_back(self, runs: list[StoredClaim]) -> None:
        """§4.3: the worker's socket died before the reply; nobody will run these."""
        back = await self._c.store.rollback_claims([run.id for run in runs])
        self._c.metrics.rolled_back.inc(len(back))
        log.warning("claim reply to worker %s was lost; rolled back %s", self._host.worker_id, back)
        if back:
            self._c.hub.work_available()
