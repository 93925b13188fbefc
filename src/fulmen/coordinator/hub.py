"""The connected workers, and the news that reaches them: work is available, a run finished.

* ``work-available`` (spec §4.5): whoever enqueued runs calls :meth:`Hub.work_available`; the
  hub pushes the event to every socket that joined ``worker:queue``: at once to a worker that
  has claimed since its last push, else at most once per ``debounce`` window (nudges.py), and
  tells other coordinators through the store's wake-ups (PostgreSQL NOTIFY); what they tell us
  arrives through :meth:`listen`. :meth:`poll` is the fallback when hints are lost: while the
  queue holds runs, workers hear about it every ``poll_interval`` seconds.
* Finished runs: :meth:`wait_finished` lets a webhook that replies after completion (§10.1)
  wait for its run. A run completed through this process wakes its waiters at once; one
  completed elsewhere is seen by re-reading the store every second.
* Cancel requests (issue 8): each joined ``run:<id>`` channel registers here, so that
  :meth:`tell_cancel` can push ``run:cancel`` to the worker that has the run. A run whose
  worker is connected to another coordinator (PostgreSQL) is told by that coordinator's
  reaper, which re-tells every requested cancel on each sweep (the store keeps the request).

* Stopping: :meth:`drain` sends every connected worker away cleanly (socket.py's drain: the
  answers first, then close code 1012) and refuses new sockets, before the server stops.

*Resource handling*: :meth:`listen` and :meth:`poll` are the long-lived tasks; they belong to
the app's task group and end when cancelled. A due push is a timer of the loop; if its
socket has gone by then, it sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from fulmen.coordinator.changes import Changes
from fulmen.coordinator.nudges import Nudge
from fulmen.errors import FulmenError
from fulmen.lifecycle import FINAL_RUN_STATES, RunState
from fulmen.plan import LANGUAGE_NAMES
from fulmen.store import Run, Store
from fulmen.store.wakeups import NoWakeups, Wakeups

__all__ = ["Hub", "RunListener", "WorkerSocket"]

log = logging.getLogger(__name__)

#: How often a waiting webhook re-reads its run, in case another coordinator completed it.
FINISHED_POLL = 1.0


class WorkerSocket(Protocol):
    """What the hub needs of a connected worker socket (socket.SocketPump)."""

    async def push_work_available(self) -> None: ...

    async def drain(self) -> None:
        """Answer what the worker asked so far, then close the socket (service restart)."""
        ...


class RunListener(Protocol):
    """What the hub needs of a joined run channel (channels.run.RunChannel)."""

    async def push_cancel(self) -> bool:
        """Tell the worker to stop the run; true if it went out on a live socket."""
        ...


#: Lightning debounces ``work-available`` by 500 ms (spec §4.5). The window exists to keep a
#: burst of enqueues from becoming a burst of pushes to a worker that is not claiming; 50 ms
#: does that just as well (at most 20 pushes a second), while 500 ms put up to half a second
#: between a webhook and its claim: bench/e2e.py's one-at-a-time runs took 460 ms p50 with it.
DEBOUNCE_S = 0.05


class Hub:
    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        *,
        debounce: float = DEBOUNCE_S,
        poll_interval: float = 2.0,
        on_count: Callable[[int], None] | None = None,
        changes: Changes | None = None,
        change_wakeups: Wakeups | None = None,
    ) -> None:
        self._store = store
        self._change_wakeups = change_wakeups
        #: The dashboard's change feed: enqueues and ends pass through here (changes.py).
        self.changes = changes or Changes()
        self._wakeups = wakeups
        #: Whether there are other coordinators to tell (PostgreSQL): on SQLite, a task per
        #: enqueue to send nothing was a cost of every webhook.
        self._others = not isinstance(wakeups, NoWakeups)
        self._debounce = debounce
        self._poll_interval = poll_interval
        self._on_count = on_count
        self._sockets: dict[WorkerSocket, Nudge] = {}
        #: The job languages each worker said it runs in its latest claim.
        self._languages: dict[WorkerSocket, frozenset[str]] = {}
        self._pushing: set[asyncio.Task[None]] = set()
        self._finished: dict[str, asyncio.Event] = {}
        self._notifying: set[asyncio.Task[None]] = set()
        self._runs: dict[str, RunListener] = {}
        self.draining = False

    # -- sockets -----------------------------------------------------------------------------

    def add(self, socket: WorkerSocket) -> None:
        self._sockets[socket] = Nudge()
        self._count()

    def remove(self, socket: WorkerSocket) -> None:
        self._sockets.pop(socket, None)  # a push still due finds it gone (_push_due)
        self._languages.pop(socket, None)
        self._count()

    def waiting_for(self, run: Run) -> str | None:
        """Why a queued run is not claimed, if it is for want of a worker that runs its
        languages (``"a worker that runs JavaScript"``); None otherwise."""
        if run.state is not RunState.AVAILABLE or self.runs(run.languages):
            return None
        return "a worker that runs " + " and ".join(LANGUAGE_NAMES.get(n, n) for n in run.languages)

    def runs(self, languages: Iterable[str]) -> bool:
        """Whether a worker connected here runs every one of ``languages`` (as its latest
        claim said). Only this coordinator's workers are known: with several coordinators,
        a worker of another one may run them."""
        wanted = frozenset(languages)
        return any(wanted <= runs for runs in self._languages.values())

    @property
    def connected(self) -> int:
        return len(self._sockets)

    @property
    def sockets(self) -> tuple[WorkerSocket, ...]:
        return tuple(self._sockets)

    def _count(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self._sockets))

    async def drain(self) -> None:
        """The coordinator is stopping: each connected worker gets the answers to what it
        has asked, then its socket is closed so that it reconnects (to this coordinator once
        restarted, or to another). Sockets opened from now on are refused, no more
        ``work-available`` goes out, and webhooks waiting for their run's end answer now
        (202, the run pending) rather than hold the shutdown up."""
        self.draining = True
        self.changes.close()  # the dashboard's event streams end: none holds the shutdown up
        for event in self._finished.values():
            event.set()
        sockets = list(self._sockets)
        if sockets:
            log.info("draining %d worker socket(s)", len(sockets))
            await asyncio.gather(*(socket.drain() for socket in sockets))

    # -- work-available ----------------------------------------------------------------------

    def work_available(self, *, tell_others: bool = True) -> None:
        """Runs were enqueued (or put back): each worker hears of it now or within
        ``debounce`` (nudges.py)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # while draining, the workers are being sent away; the other coordinators still hear
        for socket, nudge in () if self.draining else self._sockets.items():
            delay = nudge.on_work(now, self._debounce)
            if delay == 0:
                self._push(socket, now)
            elif delay is not None:
                loop.call_later(delay, self._push_due, socket)
        if tell_others:  # else another coordinator's, or the poll's: told already, or no news
            self.changes.changed()
            if self._others:  # fire and forget, keeping a reference: not collected mid-way
                self._keep(self._wakeups.notify(), self._notifying)

    def claimed(self, socket: WorkerSocket, languages: Iterable[str] = ()) -> None:
        """``socket``'s worker claimed: it has acted on its last push, and it runs
        ``languages``."""
        nudge = self._sockets.get(socket)
        if nudge is not None:
            nudge.on_claim()
            self._languages[socket] = frozenset(languages)

    def _push_due(self, socket: WorkerSocket) -> None:
        if socket in self._sockets:
            self._push(socket, asyncio.get_running_loop().time())

    def _push(self, socket: WorkerSocket, now: float) -> None:
        self._sockets[socket].on_push(now)
        self._keep(socket.push_work_available(), self._pushing)

    @staticmethod
    def _keep(work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def listen(self) -> None:
        """Relay other coordinators' wake-ups to this one's workers."""
        async for _ in self._wakeups.listen():
            self.work_available(tell_others=False)

    async def relay_changes(self) -> None:
        """The dashboard's change feed to and from the other coordinators (changes.py)."""
        if self._change_wakeups is not None:
            await self.changes.relay(self._change_wakeups)

    async def poll(self) -> None:
        """The fallback for lost wake-ups: while runs wait, say so every poll interval."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                depth = await self._store.queue_depth()
            except FulmenError as error:
                log.warning("could not read the queue depth: %s", error)
                continue
            if any(depth.values()):
                self.work_available(tell_others=False)

    # -- cancel requests ---------------------------------------------------------------------

    def attach_run(self, run_id: str, listener: RunListener) -> None:
        """``run:<id>`` was joined on this coordinator (a rejoin replaces the old channel)."""
        self._runs[run_id] = listener

    def detach_run(self, run_id: str, listener: RunListener) -> None:
        if self._runs.get(run_id) is listener:
            del self._runs[run_id]

    async def tell_cancel(self, run_ids: list[str]) -> list[str]:
        """Push ``run:cancel`` for each of ``run_ids`` whose channel is joined here; the ids
        told."""
        told = []
        for run_id in run_ids:
            listener = self._runs.get(run_id)
            if listener is not None and await listener.push_cancel():
                told.append(run_id)
        return told

    # -- finished runs -----------------------------------------------------------------------

    def run_finished(self, run_id: str) -> None:
        """``run_id`` ended here (completed, cancelled or lost), after the commit."""
        self.changes.changed(run_id)
        event = self._finished.get(run_id)
        if event is not None:
            event.set()

    async def wait_finished(self, run_id: str, timeout: float) -> Run | None:
        """The run (without its steps: a webhook answers from the run alone) once it is in a
        final state, or ``None`` if ``timeout`` passes first."""
        event = self._finished.setdefault(run_id, asyncio.Event())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                run = await self._store.peek_run(run_id)
                if run.state in FINAL_RUN_STATES:
                    return run
                remaining = deadline - loop.time()
                if remaining <= 0 or self.draining:
                    return None
                try:
                    async with asyncio.timeout(min(FINISHED_POLL, remaining)):
                        await event.wait()
                except TimeoutError:
                    pass
        finally:
            self._finished.pop(run_id, None)
