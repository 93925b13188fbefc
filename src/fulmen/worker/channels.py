"""The worker's two kinds of channel, each kept joined across reconnects by its owner.

``worker:queue`` (spec §4) is joined whenever the socket is up and rejoined after every drop,
with Phoenix's rejoin delays after a refusal (§1.6). A refusal names the likely cause:
Lightning refuses the join with ``unauthorized`` when the worker secrets differ (§1.7). The
join's answer says which optional events the server takes (``QueueJoined``): a Fulmen
coordinator lists ``run:batch_logs``, Lightning lists nothing, and the protocol has no other
way to ask (§5.9: a server without a handler crashes the channel).

``run:<id>`` (spec §5) is joined with the run token. If the socket drops or the server crashes
the channel, a request waiting on it is not lost: the channel is joined again, with the same
token, and the request sent again, for as long as the token is valid (the server would refuse
an expired one, §3.3). This is the one place where requests are retried; a request that
simply got no reply in time is not, as ws-worker does not (§1.5: retries caused duplicates).
The socket that comes back may be to another replica of the coordinator (several URLs, issue
14): the channel is joined there the same way, since replicas share the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Final, Protocol

from fulmen.contract import (
    CLAIM_FETCHES,
    FETCHABLE,
    WORKER_QUEUE,
    ClaimReply,
    ClaimRequest,
    ErrorReply,
    Event,
    QueueJoin,
    QueueJoined,
    RunJoin,
    RunJoined,
    run_topic,
)
from fulmen.errors import ContractError, NoReplyError, RefusedError
from fulmen.phoenix.client import ChannelClosed, Push
from fulmen.phoenix.frames import JSON

__all__ = ["REJOIN_DELAYS", "Link", "QueueChannel", "RunChannel"]

log = logging.getLogger(__name__)

REJOIN_DELAYS: Final = (1.0, 2.0, 5.0, 10.0)
"""Phoenix's channel rejoin delays; the last one repeats (§1.6)."""


class Link(Protocol):
    """What a channel needs from the connection (a seam for tests)."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self) -> None: ...

    async def join(self, topic: str, payload: JSON, *, timeout: float | None = None) -> JSON: ...

    async def request(
        self, topic: str, event: str, payload: JSON, *, timeout: float | None = None
    ) -> JSON | bytes: ...

    async def leave(self, topic: str, *, timeout: float = 5.0) -> None:
        """Send ``phx_leave``; return without waiting for its answer."""
        ...

    def forget(self, topic: str) -> None:
        """The server closed ``topic`` with a join's answer: forget it, sending nothing."""
        ...

    def on_push(self, topic: str, handler: Callable[[Push], None]) -> None: ...

    def on_channel_closed(self, topic: str, handler: Callable[[ChannelClosed], None]) -> None: ...


def _rejoin_delays() -> Iterator[float]:
    yield from REJOIN_DELAYS
    while True:
        yield REJOIN_DELAYS[-1]


class QueueChannel:
    """``worker:queue``: joined while connected; carries claims and ``work-available``.

    Args:
        link: the connection.
        join: the join payload (capacity and queues, §4.1).
        claim_timeout: how long a claim may wait for its reply (§1.5: an hour by default).
        on_work_available: called for each ``work-available`` push (its payload is ignored:
            lightning-mock sends the string ``"{}"``, §4.5).
        url: the base URL of the coordinator connected to now, for messages (with several
            replicas it changes as the connection moves).
    """

    def __init__(
        self,
        link: Link,
        join: QueueJoin,
        *,
        claim_timeout: float,
        on_work_available: Callable[[], None],
        url: Callable[[], str],
    ) -> None:
        self._link = link
        self._join = join
        self._claim_timeout = claim_timeout
        self._url = url
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._joined = QueueJoined()
        self.refusals = 0
        link.on_push(WORKER_QUEUE, lambda push: on_work_available())
        link.on_channel_closed(WORKER_QUEUE, self._on_closed)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def accepts(self, event: str) -> bool:
        """Whether the server said, at the latest join, that it takes the optional ``event``."""
        return event in self._joined.accepts

    async def run(self) -> None:
        """Keep the channel joined; runs until cancelled."""
        delays = _rejoin_delays()
        while True:
            await self._link.wait_connected()
            self._lost.clear()
            try:
                answer = await self._link.join(WORKER_QUEUE, self._join.to_wire())
            except RefusedError as exc:
                self.refusals += 1
                delay = next(delays)
                log.error("%s; joining again in %.0fs", self._explain(exc), delay)
                await asyncio.sleep(delay)
                continue
            except NoReplyError as exc:
                if exc.code == "timeout":
                    await asyncio.sleep(next(delays))
                continue
            delays = _rejoin_delays()
            self._joined = QueueJoined.from_wire(answer)
            self._ready.set()
            log.info("joined worker:queue with %s%s", _describe(self._join), _extras(self._joined))
            await self._lost.wait()
            self._ready.clear()

    async def claim(self, request: ClaimRequest) -> ClaimReply:
        """Send one ``claim`` and decode the reply.

        A server that lists ``CLAIM_FETCHES`` is asked for each run's plan and input too:
        such a claim joins the runs, and :class:`RunChannel` joins ``run:<id>`` only when it
        first has something to send.

        Raises:
            RefusedError, NoReplyError: as ``Connection.request``.
            ContractError: the reply does not fit ``{"runs": [...]}``.
        """
        if self.accepts(CLAIM_FETCHES):
            request = request.fetching(FETCHABLE)
        response = await self._link.request(
            WORKER_QUEUE, Event.CLAIM, request.to_wire(), timeout=self._claim_timeout
        )
        if isinstance(response, bytes):
            raise ContractError("the claim reply came as a binary frame", code="bad_reply")
        return ClaimReply.from_wire(response)

    async def leave(self) -> None:
        """Send ``phx_leave``, a courtesy, without waiting for an answer (lightning-mock never
        gives one); the caller closes the socket next, which sends it first."""
        self._ready.clear()
        if self._link.connected:
            await self._link.leave(WORKER_QUEUE, timeout=1.0)

    def _on_closed(self, event: ChannelClosed) -> None:
        self._ready.clear()
        self._lost.set()

    def _explain(self, exc: RefusedError) -> str:
        if exc.code == "unauthorized":
            return (
                f"the coordinator at {self._url()} refused this worker (unauthorized): "
                "is WORKER_SECRET the same there?"
            )
        return f"the coordinator at {self._url()} refused worker:queue: {exc.message}"


def _is_end(report: JSON) -> bool:
    return isinstance(report, dict) and report.get("event") == Event.RUN_COMPLETE


def _extras(joined: QueueJoined) -> str:
    return f"; the server takes {', '.join(sorted(joined.accepts))}" if joined.accepts else ""


def _describe(join: QueueJoin) -> str:
    queues = " ".join(f"{name}:{slots}" for name, slots in (join.queues or {}).items())
    return f"capacity {join.capacity} ({queues})"


class RunChannel:
    """``run:<id>`` for one run; see the module docstring.

    Args:
        link: the connection.
        run_id: the run.
        token: the run token (already verified by the worker).
        expires_at: the token's ``exp`` (seconds since the epoch): no rejoin after it.
        clock: wall-clock seconds since the epoch, to compare with ``expires_at``.
        join_first: join on the first :meth:`request`, not before (a run whose claim
            brought its plan, ``CLAIM_FETCHES``, runs before its channel is joined).
        reports_in_join: with ``join_first``, a first request that is a ``run:reports``
            frame goes inside that join (the server takes it, ``JOIN_REPORTS``) and is
            answered in the join's answer: a short run is then one claim and one join. When
            that frame ends the run, the join asks the server to close the channel with its
            answer (``RunJoin.leave``), and :meth:`leave` then sends nothing.
    """

    def __init__(
        self,
        link: Link,
        run_id: str,
        token: str,
        *,
        expires_at: float,
        clock: Callable[[], float] = time.time,
        join_first: bool = False,
        reports_in_join: bool = False,
    ) -> None:
        self.run_id = run_id
        self.topic = run_topic(run_id)
        self._link = link
        self._token = token
        self._expires_at = expires_at
        self._clock = clock
        self._join_first = join_first
        self._reports_in_join = reports_in_join
        self._left = False  # closed by the server with a join's answer
        self._lock = asyncio.Lock()
        self.joins = 0
        """Successful joins so far; more than one means the channel was rejoined."""

    async def join(self, *, fetch: tuple[str, ...] = ()) -> JSON:
        """Join with the run token; the join's answer. ``fetch``: ask for these in it
        (``RunJoin.fetch``, only to a server that takes it); a rejoin asks for nothing.

        Raises:
            RefusedError: ``unauthorized``, ``not_found``… (§3.3).
            NoReplyError: no answer.
        """
        answer = await self._link.join(self.topic, RunJoin(self._token, fetch).to_wire())
        self.joins += 1
        return answer

    async def request(self, event: str, payload: JSON) -> JSON | bytes:
        """Send ``event`` and return the ``ok`` response, rejoining and resending after a
        drop for as long as the token is valid.

        Raises:
            RefusedError: the server refused the event, or refused the rejoin, or the token
                expired before the channel could be joined again (``token_expired``).
            NoReplyError: ``timeout``: connected, but no reply in time (not retried).
        """
        if self._join_first and not self.joins:
            answered, response = await self._first_join(event, payload)
            if answered:
                return response
        while True:
            joins = self.joins
            try:
                return await self._link.request(self.topic, event, payload)
            except NoReplyError as exc:
                if exc.code == "timeout":
                    raise
                log.info("run %s: %s; will rejoin and resend", self.run_id, exc.message)
                await self._recover(joins)

    async def leave(self) -> None:
        """Send ``phx_leave``; its answer is not waited for (``Connection.leave``). A channel
        never joined, or closed with its join's answer, sends nothing; its push handler goes
        all the same."""
        if self._left:
            self._link.forget(self.topic)
        else:
            await self._link.leave(self.topic)

    async def _first_join(self, event: str, payload: JSON) -> tuple[bool, JSON | bytes]:
        """Join a channel not joined yet; ``(True, reply)`` when ``event`` went inside the
        join and was answered there, ``(False, None)`` when it is still to be sent.

        Raises:
            RefusedError: the join, or the frame inside it, was refused.
            NoReplyError: ``timeout``, as :meth:`request`.
        """
        reports = None
        if event == Event.RUN_REPORTS and self._reports_in_join and isinstance(payload, dict):
            listed = payload.get("reports")
            reports = listed if isinstance(listed, list) else None
        ends = reports is not None and any(_is_end(report) for report in reports)
        async with self._lock:
            if self.joins:  # a concurrent request joined meanwhile
                return False, None
            answer = await self._join_while_valid(RunJoin(self._token, reports=reports, leave=ends))
        joined = RunJoined.from_wire(answer)
        self._left = joined.left
        reply = joined.reports
        if reports is None or reply is None:
            return False, None
        if reply.get("status") != "ok":
            raise ErrorReply.from_wire(reply.get("response")).refusal(event, self.topic)
        return True, reply.get("response")

    async def _recover(self, failed_after: int) -> None:
        """Join again, unless a concurrent request already did since ``failed_after``."""
        async with self._lock:
            if self.joins != failed_after:
                return
            await self._join_while_valid(RunJoin(self._token))

    async def _join_while_valid(self, join: RunJoin) -> JSON:
        """Join with ``join``, through drops of the socket, while the token is valid; the
        join's answer. The lock is held."""
        while True:
            remaining = self._expires_at - self._clock()
            if remaining <= 0:
                raise RefusedError(
                    f"the token of run {self.run_id} expired before its channel could be joined",
                    code="token_expired",
                )
            try:
                async with asyncio.timeout(remaining):
                    await self._link.wait_connected()
                    answer = await self._link.join(self.topic, join.to_wire())
                self.joins += 1
                return answer
            except TimeoutError:
                continue
            except NoReplyError:
                await asyncio.sleep(0)  # the socket went again: wait for the next one
