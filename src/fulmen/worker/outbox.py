"""A run's outbox: its events, sent one at a time and in order, each waiting for its reply
before the next goes (spec §5.11: one sequential queue per run).

The run produces events as fast as its child emits them and never waits for the network; the
outbox sends them at the pace the coordinator answers. When log batching is on
(``WORKER_BATCH_LOGS``, §5.9, §8.4), consecutive log lines go as one ``run:batch_logs`` of up
to ``batch_limit`` lines, collected for up to ``batch_interval`` seconds; any other event ends
a batch early, so order is kept.

*Error handling* (§5.2, §1.5): a refused event is logged and passed over, as ws-worker does
(the server would refuse it again); so is one that got no reply in time. A dropped connection
is not an error here: :class:`~fulmen.worker.channels.RunChannel` rejoins and resends, so a
finished event is delivered once the socket is back. Only when the channel cannot be joined
again (the token expired, or the server refuses the rejoin) are the remaining events given up,
with one log line saying how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from fulmen.contract import JSON, Event, RunBatchLogs, RunLog
from fulmen.errors import NoReplyError, RefusedError
from fulmen.worker.events import Message, event_of

__all__ = ["Outbox", "Sender", "Sent", "take_batch"]

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
        batch_limit: int = 50,
        batch_interval: float = 0.01,
    ) -> None:
        self._channel = channel
        self._run_id = run_id
        self._batch = batch_logs
        self._limit = batch_limit
        self._interval = batch_interval
        self._queue: deque[Message] = deque()
        self._arrived = asyncio.Event()
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
        self._arrived.set()

    def close(self) -> None:
        """No more events will come; :meth:`run` returns once the queue is empty."""
        self._closed = True
        self._arrived.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Send everything, in order, until closed and empty. Never raises a WorkerError."""
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self._batch and isinstance(self._queue[0], RunLog):
                await self._gather_logs()
                batch = take_batch(self._queue, self._limit)
                payload = RunBatchLogs(self._run_id, tuple(item.line for item in batch))
                gone = await self._send(Event.RUN_BATCH_LOGS, payload.to_wire(), len(batch))
            else:
                message = self._queue.popleft()
                gone = await self._send(event_of(message), message.to_wire(), 1)
            if gone:
                self._give_up()
                return

    async def _gather_logs(self) -> None:
        """Wait until a batch is full, a non-log event is queued, the outbox is closed, or the
        interval has passed since the batch began."""
        deadline = time.monotonic() + self._interval
        while not self._closed and self._leading_logs() < self._limit:
            if self._leading_logs() < len(self._queue):
                return  # a non-log event is waiting behind the logs
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    def _leading_logs(self) -> int:
        count = 0
        for item in self._queue:
            if not isinstance(item, RunLog):
                break
            count += 1
        return count

    async def _send(self, event: Event, payload: JSON, count: int) -> bool:
        """Send one frame; return true if the channel is gone for good."""
        try:
            await self._channel.request(event, payload)
        except RefusedError as exc:
            if exc.code in _LOST_CODES:
                self.sent.append(Sent(event, "lost", count))
                log.error("run %s: %s", self._run_id, exc.message)
                return True
            self.sent.append(Sent(event, "refused", count))
            log.warning("run %s: %s", self._run_id, exc.message)
        except NoReplyError as exc:
            self.sent.append(Sent(event, "no_reply", count))
            log.warning("run %s: %s; not sent again (§1.5)", self._run_id, exc.message)
        else:
            self.sent.append(Sent(event, "ok", count))
        return False

    def _give_up(self) -> None:
        self._gone = True
        lost = len(self._queue)
        for message in self._queue:
            self.sent.append(Sent(event_of(message), "lost"))
        self._queue.clear()
        if lost:
            log.error("run %s: %d more events could not be delivered", self._run_id, lost)
