"""The dashboard's change feed: "runs changed" (and which), told to the pages' event streams.

Whoever records something about a run on this coordinator says so once, after the commit:
:meth:`Changes.changed` (its creation and its going back to the queue through the hub's
``work_available``, its claim in channels/queue.py, a worker's reports in channels/run.py, its
end, cancel or loss through the hub's ``run_finished``). The feed is a hint, not a log: a
page that hears it re-reads its fragments from the store, so a notice may stand for any
number of changes, and one missed is made up by the page's slow fallback poll.

Bursts are coalesced (:class:`Coalescer`, plain bookkeeping without I/O): the first change
after a quiet ``window`` is told at once, later ones gather until the window has passed since
the last notice, then go out together. A run writing 50 log lines in 100 ms is one or two
notices, not 50, and an idle dashboard hears of a new run without waiting.

Other coordinators sharing a PostgreSQL store: :meth:`Changes.relay` publishes each local
notice on the ``fulmen_changes`` channel of store/wakeups.py (NOTIFY, with the runs' ids and
this coordinator's own mark, so that it ignores its own), and tells this one's streams the
notices the others publish (:meth:`Changes.heard`: not published again). A notice lost on the
way (a listener reconnecting) is made up by the pages' slow fallback poll
(``FULMEN_DASHBOARD_LIVE_POLL_SECONDS``, 20 s).

*Resource handling*: a notice due later is a timer of the loop. :meth:`close` (the coordinator
is stopping: hub.drain) ends every subscription at once, so no stream holds the server's
graceful shutdown up; subscriptions opened after it end at once too.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from fulmen.store.wakeups import Wakeups

__all__ = ["WINDOW_S", "Changes", "Coalescer", "Notice", "Subscription", "decode", "encode"]

#: How long changes gather before the next notice: at most ten notices a second, and a
#: page's re-read costs a few milliseconds.
WINDOW_S = 0.1
#: A published notice names at most this many runs, else it says "some run" (a NOTIFY's
#: payload is at most 8000 bytes; a page re-reads everything anyway).
MAX_RUNS_PUBLISHED: Final = 100


@dataclass(frozen=True)
class Notice:
    """Runs changed: these ones, and, if ``any_run``, others not named (a run was
    enqueued somewhere and its id is not known to whoever said so)."""

    runs: frozenset[str] = frozenset()
    any_run: bool = False

    def concerns(self, run_id: str | None) -> bool:
        """Whether a page watching ``run_id`` (``None``: every run) should re-read."""
        return run_id is None or self.any_run or run_id in self.runs


def encode(notice: Notice, origin: str) -> str:
    """``notice`` as a NOTIFY payload from the coordinator ``origin``."""
    runs = sorted(notice.runs)
    many = len(runs) > MAX_RUNS_PUBLISHED
    return json.dumps(
        {"o": origin, "r": [] if many else runs, "a": notice.any_run or many},
        separators=(",", ":"),
    )


def decode(payload: str) -> tuple[Notice, str] | None:
    """A payload :func:`encode` made, and who made it; None for anything else (a payload
    is another process's words: read, never trusted to be well formed)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("o"), str):
        return None
    runs = doc.get("r")
    if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
        return None
    return Notice(frozenset(runs), bool(doc.get("a"))), doc["o"]


@dataclass
class Coalescer:
    """What has changed since the last notice, and when the next one is due; times are a
    monotonic clock's seconds."""

    window: float = WINDOW_S
    #: When the last notice went out (never: minus infinity, so a window has always passed).
    sent_at: float = float("-inf")
    #: A notice is already due at this time.
    due: float | None = None
    _runs: set[str] = field(default_factory=set)
    _any_run: bool = False

    def on_change(self, now: float, run_id: str | None) -> float | None:
        """A change: send the notice in this many seconds (0: now), or ``None``: one is
        already due and will carry this change too."""
        if run_id is None:
            self._any_run = True
        else:
            self._runs.add(run_id)
        if self.due is not None:
            return None
        delay = max(0.0, self.sent_at + self.window - now)
        self.due = now + delay
        return delay

    def take(self, now: float) -> Notice:
        """The notice to send now; what changed starts gathering afresh."""
        notice = Notice(frozenset(self._runs), self._any_run)
        self._runs = set()
        self._any_run = False
        self.sent_at = now
        self.due = None
        return notice


class Subscription:
    """One event stream's view of the feed: whether a notice for it came since it last
    looked (notices in between collapse into one: a page re-reads everything anyway)."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self._event = asyncio.Event()
        self.closed = False

    def _tell(self, notice: Notice) -> None:
        if notice.concerns(self.run_id):
            self._event.set()

    def _close(self) -> None:
        self.closed = True
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True when a notice came (now or within ``timeout`` seconds); false on timeout
        or once the feed is closed (check :attr:`closed`)."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return not self.closed


class Changes:
    """The asyncio side of :class:`Coalescer`: timers, subscribers, and the other
    coordinators (``publish``)."""

    def __init__(
        self,
        *,
        window: float = WINDOW_S,
        publish: Callable[[Notice], None] | None = None,
    ) -> None:
        self._local = Coalescer(window)
        self._heard = Coalescer(window)
        self._publish = publish
        self._subscribers: set[Subscription] = set()
        self._publishing: set[asyncio.Task[None]] = set()
        self.closed = False

    def changed(self, run_id: str | None = None) -> None:
        """This coordinator recorded a change of ``run_id`` (``None``: a run it does not
        name, e.g. enqueued); told to its streams and to the other coordinators."""
        self._schedule(self._local, run_id, publish=True)

    def heard(self, notice: Notice) -> None:
        """Another coordinator published ``notice``: tell this one's streams only."""
        if notice.any_run:
            self._schedule(self._heard, None, publish=False)
        for run_id in notice.runs:
            self._schedule(self._heard, run_id, publish=False)

    def _schedule(self, coalescer: Coalescer, run_id: str | None, *, publish: bool) -> None:
        loop = asyncio.get_running_loop()
        delay = coalescer.on_change(loop.time(), run_id)
        if delay == 0:
            self._send(coalescer, publish)
        elif delay is not None:
            loop.call_later(delay, self._send, coalescer, publish)

    def _send(self, coalescer: Coalescer, publish: bool) -> None:
        notice = coalescer.take(asyncio.get_running_loop().time())
        if self.closed:
            return
        for subscriber in self._subscribers:
            subscriber._tell(notice)
        if publish and self._publish is not None:
            self._publish(notice)

    async def relay(self, wakeups: Wakeups) -> None:
        """Publish this coordinator's notices on ``wakeups`` and tell this one's streams
        those the other coordinators publish; runs until cancelled."""
        origin = secrets.token_hex(8)
        self._publish = lambda notice: self._keep(wakeups.notify(encode(notice, origin)))
        async for payload in wakeups.listen():
            heard = decode(payload)
            if heard is not None and heard[1] != origin and not self.closed:
                self.heard(heard[0])

    def _keep(self, work: Coroutine[Any, Any, None]) -> None:
        """Fire and forget, keeping a reference so that the task is not collected mid-way."""
        task = asyncio.get_running_loop().create_task(work)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    @asynccontextmanager
    async def subscribe(self, run_id: str | None = None) -> AsyncIterator[Subscription]:
        """Hear the notices that concern ``run_id`` (``None``: every run) until the block
        ends or the feed closes."""
        subscription = Subscription(run_id)
        if self.closed:
            subscription._close()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """The coordinator is stopping: every subscription ends now, and later ones at once."""
        self.closed = True
        for subscriber in self._subscribers:
            subscriber._close()
