"""A run's outbox: its events, sent one at a time and in order, each waiting for its reply
before the next goes (spec §5.11: one sequential queue per run).

The run produces events as fast as its child emits them and never waits for the network; the
outbox sends them at the pace the coordinator answers. When log batching is on
(``WORKER_BATCH_LOGS``, §5.9, §8.4), consecutive log lines go as one ``run:batch_logs`` of up
to ``batch_limit`` lines, collected for up to ``batch_interval`` seconds; any other event ends
a batch early, so order is kept.

When the coordinator takes ``run:reports`` (Fulmen's own, contract/reports.py), the outbox
gathers what the run reports for up to ``batch_interval``, or until ``run:complete`` is
queued, and sends it as one frame: a short run's whole report (lines, ``run:start``, its
steps, ``run:complete``) is one round trip and one commit on the coordinator instead of
eight; a longer run's start goes once the interval has passed, and its end at once. Each
report is still answered on its own, so nothing else below changes. A frame holds
at most :data:`~fulmen.contract.MAX_REPORTS` reports and :data:`BUNDLE_BYTES` of payload; a
report larger than that, or one that only Python's JSON encoder can write (a lone surrogate
in a line), goes on its own.

*Error handling* (§5.2, §1.5): a refused event is logged and passed over, as ws-worker does
(the server would refuse it again); so is one that got no reply in time. A dropped connection
is not an error here: :class:`~fulmen.worker.channels.RunChannel` rejoins and resends, so a
finished event is delivered once the socket is back. Only when the channel cannot be joined
again (the token expired, or the server refuses the rejoin) are the remaining events given up,
with one log line saying how many.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import orjson

from fulmen.contract import (
    JSON,
    MAX_REPORTS,
    ErrorReply,
    Event,
    ReportReply,
    RunBatchLogs,
    RunComplete,
    RunLog,
)
from fulmen.errors import NoReplyError, RefusedError
from fulmen.worker.events import Message, event_of

__all__ = ["BUNDLE_BYTES", "Outbox", "Sender", "Sent", "take_batch"]

#: The most payload bytes one ``run:reports`` frame carries.
BUNDLE_BYTES: Final = 1024 * 1024

log = logging.getLogger(__name__)

_LOST_CODES = frozenset({"token_expired", "unauthorized", "not_found"})
"""Refusals of a *rejoin*: the channel is gone for good, so is everything still queued."""


class Sender(Protocol):
    async def request(self, event: str, payload: JSON) -> JSON | bytes: ...


@dataclass(frozen=True, slots=True)
class Sent:
    """What happened to one outgoing frame: ``ok``, ``refused``, ``no_reply`` or ``lost``."""

    event: Event
    outcome: str
    count: int = 1


@dataclass(slots=True)
class _Frame:
    """One report ready to go: its event, payload and how many events it carries; ``encoded``
    is the payload as orjson writes it, once it has been measured for a bundle."""

    event: Event
    payload: JSON
    count: int
    encoded: bytes | None = field(default=None)


def take_batch(queue: deque[Message], limit: int) -> list[RunLog]:
    """Pop the leading log lines of ``queue``, at most ``limit`` of them."""
    batch: list[RunLog] = []
    while queue and len(batch) < limit:
        head = queue[0]
        if not isinstance(head, RunLog):
            break
        batch.append(head)
        queue.popleft()
    return batch


class Outbox:
    """One run's ordered outbox; see the module docstring.

    Args:
        channel: sends one event and returns its reply (``RunChannel.request``).
        run_id: for messages and batches.
        batch_logs: send log lines as ``run:batch_logs`` (only to servers known to have it).
        bundle: send what is queued as one ``run:reports`` (only to servers that list it);
            lines then go as ``run:batch_logs`` too.
        batch_limit, batch_interval: a batch's most lines and longest wait, in seconds.

    Use: :meth:`put` events as they happen, :meth:`close` after the last, and have one task
    await :meth:`run`, which returns once everything is sent (or given up). :attr:`sent`
    records each outcome, in order.
    """

    def __init__(
        self,
        channel: Sender,
        run_id: str,
        *,
        batch_logs: bool = False,
        bundle: bool = False,
        batch_limit: int = 50,
        batch_interval: float = 0.01,
    ) -> None:
        self._channel = channel
        self._run_id = run_id
        self._batch = batch_logs or bundle
        self._bundle = bundle
        self._held: _Frame | None = None
        self._ending = False  # run:complete is queued
        self._limit = batch_limit
        self._interval = batch_interval
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None  # what run() awaits, if it waits
        self._ready: Callable[[], bool] | None = None  # what ends the wait; None: any put
        self._since: float | None = None  # when the gather under way began
        self._timer: asyncio.TimerHandle | None = None  # ends it at its interval
        self._closed = False
        self._gone = False
        self.sent: list[Sent] = []

    def put(self, messages: Iterable[Message]) -> None:
        """Queue events to send; once the channel is gone for good they are only counted."""
        if self._closed:
            raise RuntimeError(f"the outbox of run {self._run_id} is closed")
        if self._gone:
            self.sent.extend(Sent(event_of(message), "lost") for message in messages)
            return
        self._queue.extend(messages)
        if not self._ending:
            self._ending = any(isinstance(m, RunComplete) for m in messages)
        if self._waiter is None:
            return  # run() is sending; it looks at the queue next
        if self._ready is None:  # run() waits for anything: this is the start of a gather
            self._ready = self._gathering()
            if self._ready is not None:
                self._since = time.monotonic()
                self._timer = asyncio.get_running_loop().call_later(self._interval, self._wake)
        if self._ready is None or self._ready():  # a gather wakes only when it can end
            self._wake()

    def close(self) -> None:
        """No more events will come; :meth:`run` returns once the queue is empty."""
        self._closed = True
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._queue) + (self._held is not None)

    async def run(self) -> None:
        """Send everything, in order, until closed and empty. Never raises a WorkerError."""
        while True:
            if self._held is None and not self._queue:
                if self._closed:
                    return
                await self._wait(None)  # a put that starts a gather wakes it only at its end
                continue
            ready = self._gathering()
            if ready is not None:
                await self._gather(ready)
            frames = self._take_bundle() if self._bundle else [self._next_frame()]
            if len(frames) == 1:
                gone = await self._send(frames[0])
            else:
                gone = await self._send_bundle(frames)
            if gone:
                self._give_up()
                return

    def _next_frame(self) -> _Frame:
        """The next report: one event, or the leading log lines as one batch."""
        if self._held is not None:
            frame, self._held = self._held, None
            return frame
        if self._batch and isinstance(self._queue[0], RunLog):
            batch = take_batch(self._queue, self._limit)
            logs = RunBatchLogs(self._run_id, tuple(item.line for item in batch))
            return _Frame(Event.RUN_BATCH_LOGS, logs.to_wire(), len(batch))
        message = self._queue.popleft()
        return _Frame(event_of(message), message.to_wire(), 1)

    def _take_bundle(self) -> list[_Frame]:
        """The reports queued now, as many as fit one ``run:reports``; a report that does not
        fit is held for the next frame."""
        frames: list[_Frame] = []
        size = 0
        while (self._held is not None or self._queue) and len(frames) < MAX_REPORTS:
            frame = self._next_frame()
            try:
                frame.encoded = orjson.dumps(frame.payload)
            except orjson.JSONEncodeError:  # phoenix.frames has a fallback for it, alone
                frame.encoded = None
            if frame.encoded is None or size + len(frame.encoded) > BUNDLE_BYTES:
                if frames:
                    self._held = frame
                else:
                    frames.append(frame)
                break
            frames.append(frame)
            size += len(frame.encoded)
        return frames

    def _gathering(self) -> Callable[[], bool] | None:
        """What the next frame waits for, if it waits: its end or a frame's worth when
        bundling, a full batch when the head is a log line to batch; None: it goes now."""
        if self._held is not None or not self._queue:
            return None
        if self._bundle:
            return self._frame_ready
        if self._batch and isinstance(self._queue[0], RunLog):
            return self._batch_ready
        return None

    async def _gather(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()``, the outbox is closed, or the interval has passed since the
        gather began (at the put that found the outbox idle, or now)."""
        since, self._since = self._since, None
        deadline = (since if since is not None else time.monotonic()) + self._interval
        while not self._closed and not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await self._wait(ready, remaining)

    async def _wait(self, ready: Callable[[], bool] | None, timeout: float | None = None) -> None:
        """Until a put makes ``ready()`` true (any put, for None), :meth:`close`, or
        ``timeout`` seconds. One future and at most one timer: an ``asyncio.Event`` and an
        ``asyncio.timeout`` for each wait cost the worker more than the rest of the outbox."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._ready = ready
        if timeout is not None:
            self._timer = loop.call_later(timeout, self._wake)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._ready = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _batch_ready(self) -> bool:
        """A batch of lines is full, or a non-log event waits behind the lines."""
        leading = self._leading_logs()
        return leading >= self._limit or leading < len(self._queue)

    def _frame_ready(self) -> bool:
        """The run's end is queued (a short run goes as one frame), or a frame's worth is."""
        return self._ending or len(self._queue) >= self._limit

    def _leading_logs(self) -> int:
        count = 0
        for item in self._queue:
            if not isinstance(item, RunLog):
                break
            count += 1
        return count

    async def _send(self, frame: _Frame) -> bool:
        """Send one report; return true if the channel is gone for good."""
        outcome, _reply = await self._request(frame.event, frame.payload)
        self.sent.append(Sent(frame.event, outcome, frame.count))
        return outcome == "lost"

    async def _send_bundle(self, frames: list[_Frame]) -> bool:
        """Send several reports as one ``run:reports``; return true if the channel is gone."""
        reports: list[JSON] = [
            {"event": frame.event.value, "payload": _fragment(frame)} for frame in frames
        ]
        outcome, reply = await self._request(Event.RUN_REPORTS, {"reports": reports})
        if outcome != "ok" or isinstance(reply, bytes):
            self.sent.extend(Sent(frame.event, outcome, frame.count) for frame in frames)
            return outcome == "lost"
        answers = ReportReply.many_from_wire(reply, len(frames))
        for frame, answer in zip(frames, answers, strict=True):
            self.sent.append(Sent(frame.event, "ok" if answer.ok else "refused", frame.count))
            if not answer.ok:
                why = ErrorReply.from_wire(answer.response).describe()
                log.warning("run %s: %s was refused: %s", self._run_id, frame.event.value, why)
        return False

    async def _request(self, event: Event, payload: JSON) -> tuple[str, JSON | bytes]:
        """Send one frame: its outcome (a :class:`Sent` outcome, already logged unless ``ok``)
        and its reply."""
        try:
            return "ok", await self._channel.request(event, payload)
        except RefusedError as exc:
            if exc.code in _LOST_CODES:
                log.error("run %s: %s", self._run_id, exc.message)
                return "lost", None
            log.warning("run %s: %s", self._run_id, exc.message)
            return "refused", None
        except NoReplyError as exc:
            log.warning("run %s: %s; not sent again (§1.5)", self._run_id, exc.message)
            return "no_reply", None

    def _give_up(self) -> None:
        self._gone = True
        held, self._held = self._held, None
        if held is not None:
            self.sent.append(Sent(held.event, "lost", held.count))
        lost = len(self._queue) + (held is not None)
        for message in self._queue:
            self.sent.append(Sent(event_of(message), "lost"))
        self._queue.clear()
        if lost:
            log.error("run %s: %d more events could not be delivered", self._run_id, lost)


def _fragment(frame: _Frame) -> JSON:
    """The payload already written, to be embedded as it is (``orjson.Fragment``)."""
    assert frame.encoded is not None  # every frame of a bundle was measured
    return cast(JSON, orjson.Fragment(frame.encoded))
