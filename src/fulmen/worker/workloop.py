"""Workloops: which queues a worker claims from, how many runs each may hold, and the claim
loop that keeps each one's slots full without ever taking more (spec §10.3, §4.2-§4.5).

The decisions are pure: :func:`parse_workloops` reads ``--workloops``, :class:`Capacity` counts
a loop's active runs and the slots reserved by its claim in flight. :class:`Workloop` only
sequences them: wait for a free slot and a joined ``worker:queue``, claim exactly the free
slots, hand each run on, and back off while the queue is empty.

Differences from ws-worker, on purpose:

* A claim asks for every free slot at once (``demand`` = free slots; Lightning honours any
  demand), where ws-worker always asks for 1. With one slot this is the same frame.
* After a claim that returned runs, the loop claims again at once while slots are free, where
  ws-worker waits ``backoff.min`` first: there is work, and throughput matters (issue 5 asks
  for 300 runs/s). An empty or failed claim backs off exactly as ws-worker does (×1.15 from
  ``min``, capped at ``max``).

While the worker's run tokens keep failing (:class:`~fulmen.worker.refusals.Refusals`), no
claim goes out but the occasional probe for one run (issue 14).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from fulmen import backoff
from fulmen.contract import DEFAULT_QUEUES, ClaimedRun, ClaimReply, ClaimRequest, QueueJoin
from fulmen.errors import ConfigError, ContractError, WorkerError
from fulmen.worker.refusals import Refusals

__all__ = [
    "CLAIM_BACKOFF_FACTOR",
    "Capacity",
    "QueueGate",
    "Workloop",
    "WorkloopSpec",
    "default_workloops",
    "duplicates",
    "parse_workloops",
    "queue_join",
]

log = logging.getLogger(__name__)

CLAIM_BACKOFF_FACTOR = 1.15
"""ws-worker's claim backoff growth (§10.3)."""

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class WorkloopSpec:
    """One workloop: an ordered queue preference (``*`` = any, last) and its slots."""

    queues: tuple[str, ...]
    slots: int

    @property
    def name(self) -> str:
        """The preference chain as ws-worker writes it in the join payload: ``manual>*``."""
        return ">".join(self.queues)

    def __str__(self) -> str:
        return f"{self.name}:{self.slots}"


def default_workloops(capacity: int) -> tuple[WorkloopSpec, ...]:
    """``--capacity N`` means one loop, ``manual>*:N`` (ws-worker's default, §10.3)."""
    return (WorkloopSpec(DEFAULT_QUEUES, capacity),)


def parse_workloops(text: str, *, variable: str = "WORKER_WORKLOOPS") -> tuple[WorkloopSpec, ...]:
    """Read ``"fast_lane:1 manual>*:4"``: space-separated ``<q1>[>q2…]:<slots>`` groups.

    Raises:
        ConfigError: ``bad_workloops``, naming ``variable`` and the group at fault.
    """
    groups = text.split()
    if not groups:
        raise _bad(variable, text, "at least one group like manual>*:4")
    return tuple(_group(group, variable) for group in groups)


def _group(group: str, variable: str) -> WorkloopSpec:
    chain, sep, slots_text = group.rpartition(":")
    if not sep or not chain:
        raise _bad(variable, group, "<queue>[>queue…]:<slots>")
    try:
        slots = int(slots_text)
    except ValueError:
        raise _bad(variable, group, "a whole number of slots after the colon") from None
    if slots < 1:
        raise _bad(variable, group, "at least 1 slot")
    queues = tuple(chain.split(">"))
    for i, queue in enumerate(queues):
        if queue == "*":
            if i != len(queues) - 1:
                raise _bad(variable, group, "'*' only as the last queue")
        elif not _QUEUE_NAME.fullmatch(queue):
            raise _bad(variable, group, "queue names of letters, digits and _")
    return WorkloopSpec(queues, slots)


def _bad(variable: str, group: str, expected: str) -> ConfigError:
    return ConfigError(f"{variable}: {group!r} should be {expected}", code="bad_workloops")


def duplicates(specs: Sequence[WorkloopSpec]) -> list[str]:
    """Preference chains configured more than once (ws-worker warns about them)."""
    names = [spec.name for spec in specs]
    return sorted({name for name in names if names.count(name) > 1})


def queue_join(specs: Sequence[WorkloopSpec]) -> QueueJoin:
    """The ``worker:queue`` join payload: total capacity and slots per chain (§4.1)."""
    queues: dict[str, int] = {}
    for spec in specs:
        queues[spec.name] = queues.get(spec.name, 0) + spec.slots
    return QueueJoin(capacity=sum(spec.slots for spec in specs), queues=queues)


@dataclass(slots=True)
class Capacity:
    """A workloop's slots: runs active, and slots reserved by the claim in flight.

    The only place that decides how much to claim (STYLE.md P4), so the worker can never hold
    more runs than slots: a claim reserves what is free, and settling it keeps at most that.
    """

    slots: int
    active: int = 0
    pending: int = 0

    def free(self) -> int:
        return self.slots - self.active - self.pending

    def reserve(self, limit: int | None = None) -> int:
        """Reserve every free slot (at most ``limit``) for one claim; return its demand
        (0: do not claim)."""
        demand = max(self.free(), 0) if limit is None else max(min(self.free(), limit), 0)
        self.pending += demand
        return demand

    def settle(self, demand: int, received: int) -> int:
        """The claim for ``demand`` returned ``received`` runs; return how many to run."""
        self.pending -= demand
        accepted = min(received, demand)
        self.active += accepted
        return accepted

    def release(self) -> None:
        """One run of this loop finished."""
        self.active -= 1


Claimer = Callable[[ClaimRequest], Awaitable[ClaimReply]]
RunStarter = Callable[[ClaimedRun, "Workloop"], None]


class QueueGate(Protocol):
    """``worker:queue`` as a workloop sees it (``QueueChannel``): joined or not."""

    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...


class Workloop:
    """The claim loop of one :class:`WorkloopSpec`; see the module docstring.

    Args:
        spec: the queues and slots.
        claim: sends a ``claim`` and returns the decoded reply (raises WorkerError or
            ContractError on failure, which count as an empty reply).
        start_run: called once per run to keep; the run must call :meth:`run_finished`.
        queue: says whether ``worker:queue`` is joined, and waits until it is.
        worker_name: sent in every claim (null allowed, never omitted: §4.2).
        languages: the job languages this worker runs, said in every claim (Fulmen's own
            field: a Fulmen coordinator hands it only runs it can run; Lightning ignores it).
        backoff_min, backoff_max: the empty-queue backoff (``WORKER_BACKOFF``).
        refusals: the worker's run-token refusals; while they stop claiming, this loop only
            probes when one is due.
    """

    def __init__(
        self,
        spec: WorkloopSpec,
        *,
        claim: Claimer,
        start_run: RunStarter,
        queue: QueueGate,
        worker_name: str | None,
        backoff_min: float,
        backoff_max: float,
        refusals: Refusals | None = None,
        languages: tuple[str, ...] = ("python",),
    ) -> None:
        self.spec = spec
        self.capacity = Capacity(spec.slots)
        self._claim = claim
        self._start_run = start_run
        self._queue = queue
        self._worker_name = worker_name
        self._languages = languages
        self._backoff = (backoff_min, backoff_max)
        self._refusals = refusals
        self._nudge = asyncio.Event()  # work-available, or stop
        self._freed = asyncio.Event()  # a run finished, or stop
        self._stopping = False
        self._stopped = asyncio.Event()

    def work_available(self) -> None:
        """Claim at once if a slot is free (§4.5), cutting any backoff short."""
        self._nudge.set()

    def run_finished(self) -> None:
        self.capacity.release()
        self._freed.set()

    def stop(self) -> None:
        """Claim no more; a claim in flight still completes and its runs still run (§10.4)."""
        self._stopping = True
        self._stopped.set()
        self._nudge.set()
        self._freed.set()

    async def run(self) -> None:
        """Claim until :meth:`stop`. Never raises for a failed claim."""
        schedule = self._schedule()
        while not self._stopping:
            if self.capacity.free() <= 0:
                await self._wait_for_a_free_slot()
                schedule = self._schedule()  # restarted fresh after being full (§10.3)
                continue
            await self._until_ready()
            if self._stopping:
                break
            refusals = self._refusals
            if refusals is not None and refusals.stopped and not refusals.probe_due():
                self._nudge.clear()
                await self._nap(refusals.seconds_to_probe())  # or until resumed (a nudge)
                continue
            if await self.claim_once():
                schedule = self._schedule()
                continue
            await self._nap(next(schedule))

    async def claim_once(self) -> int:
        """Claim the free slots once (one, for a probe); return how many runs were started."""
        self._nudge.clear()
        refusals = self._refusals
        probe = refusals is not None and refusals.probe_due()
        if refusals is not None and refusals.stopped and not probe:
            return 0
        demand = self.capacity.reserve(1 if probe else None)
        if demand == 0:
            return 0
        if refusals is not None and probe:
            refusals.start_probe()
        request = ClaimRequest(
            demand, self._worker_name, self.spec.queues, languages=self._languages
        )
        try:
            reply = await self._claim(request)
        except (WorkerError, ContractError) as exc:
            log.warning("claim on %s failed: %s", self.spec.name, exc)
            reply = ClaimReply(())
        runs = reply.runs
        if refusals is not None and probe and not runs:
            refusals.probe_came_back_empty()
        accepted = self.capacity.settle(demand, len(runs))
        if len(runs) > accepted:
            ignored = ", ".join(run.id for run in runs[accepted:])
            log.error(
                "the coordinator sent %d runs for a claim of %d; not running %s",
                len(runs),
                demand,
                ignored,
            )
        for run in runs[:accepted]:
            self._start_run(run, self)
        return accepted

    def _schedule(self) -> Iterator[float]:
        low, high = self._backoff
        return backoff.delays(low, high, factor=CLAIM_BACKOFF_FACTOR)

    async def _until_ready(self) -> None:
        """Wait for a joined ``worker:queue``, or for :meth:`stop`. Before nearly every claim
        it is joined already, and then nothing is waited for: racing two tasks would cost
        the worker more than the claim itself."""
        if self._queue.ready:
            return
        waits = [
            asyncio.ensure_future(self._queue.wait_ready()),
            asyncio.ensure_future(self._stopped.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _wait_for_a_free_slot(self) -> None:
        self._freed.clear()
        while self.capacity.free() <= 0 and not self._stopping:
            await self._freed.wait()
            self._freed.clear()

    async def _nap(self, seconds: float | None) -> None:
        """Sleep ``seconds`` (``None``: however long) unless work-available, a resume or a
        stop comes first."""
        try:
            async with asyncio.timeout(seconds):
                await self._nudge.wait()
        except TimeoutError:
            pass
