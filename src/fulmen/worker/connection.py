"""The worker's one WebSocket to its coordinator (to one of them, when it has several): the
asyncio pump around :class:`~fulmen.phoenix.client.ClientSession` (STYLE.md P1).

Theory of operation. :meth:`Connection.run` loops for the worker's whole life: connect, pump
frames until the socket goes, reconnect after a capped, jittered delay (at most
:data:`RECONNECT_MAX`, so a worker is back within seconds of a short outage). The session is one
object across every reconnect, so refs keep counting up as Phoenix JS's do (§1.6). While
connected, inbound frames go to the session as the socket reads them (``websocket.py``), and
whatever the session queues is written once per pass of the event loop, in order, however
many requests queued it: runs that answer their replies in the same pass share one write.
A ticker task calls ``tick`` by the session's next deadline (request timeouts and the 30 s
heartbeat, §1.4). A heartbeat left unanswered closes the socket, as Phoenix JS does.

Callers see requests, not frames: :meth:`Connection.request` and :meth:`Connection.join`
return the ``ok`` response or raise :class:`~fulmen.errors.RefusedError` (an ``error`` reply)
or :class:`~fulmen.errors.NoReplyError` (timeout, socket gone, channel closed). Rejoining
channels after a reconnect is the channel owners' business (``channels.py``): only they know
whether a run token is still good.

Addresses (§10.6): every base URL's host name is resolved (``target.resolve``) and every
address is tried in turn, in ``target.failover_order``: IPv4 first, so ``localhost`` works
whether the resolver answers ``::1`` or ``127.0.0.1`` first and whichever of the two the
coordinator listens on; then, when there are several replicas (several URLs, or a name with
several addresses), in the worker's own order, and after a drop starting with the next
replica. A run that was waiting to report rejoins its channel on whichever replica the socket
reaches, and resends there (``channels.py``): replicas share the database. The request keeps
the name in its ``Host`` header (and for TLS).

Shutdown (:meth:`Connection.close`) never waits for what may not come: an opening in progress
is abandoned, and the server's closing of the TCP connection is waited for only as long as
the caller says.

The socket URL carries the worker token, so it is never logged: messages name the base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

from websockets.exceptions import InvalidHandshake, InvalidStatus

from fulmen import backoff
from fulmen.contract import ErrorReply
from fulmen.errors import (
    LocalProtocolError,
    NoReplyError,
    RemoteProtocolError,
    UnreachableError,
)
from fulmen.phoenix.client import (
    ChannelClosed,
    ClientEvent,
    ClientSession,
    HeartbeatTimeout,
    NoReply,
    Push,
    Reply,
)
from fulmen.phoenix.frames import JSON
from fulmen.worker import websocket
from fulmen.worker.target import (
    Address,
    Endpoint,
    Resolver,
    Target,
    endpoints_of,
    failover_order,
    resolve,
    socket_url,
)

__all__ = ["RECONNECT_MAX", "RECONNECT_MIN", "Connection", "reconnect_delays"]

log = logging.getLogger(__name__)

MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
"""Inbound frames we accept: a plan or dataclip reply can be over 10 MB (§1.1)."""
OPEN_TIMEOUT: Final = 10.0
RECONNECT_MIN: Final = 0.5
"""The shortest wait before reconnecting: a coordinator that accepts and drops at once
costs at most two connections a second."""
RECONNECT_MAX: Final = 5.0
"""The longest wait before reconnecting: after a short outage the worker is back within
seconds, with its runs' pending reports (issue 14; it was 30 s)."""

T = TypeVar("T")


def reconnect_delays() -> Iterator[float]:
    """Reconnect delays between :data:`RECONNECT_MIN` and :data:`RECONNECT_MAX`, growing
    about twofold with decorrelated jitter (``backoff.decorrelated``), so that workers
    dropped together by a restarting coordinator do not return together. (ws-worker waits
    1 s, 2 s, 3 s… without a cap, §1.6.)"""
    return backoff.decorrelated(RECONNECT_MIN, RECONNECT_MAX)


class Connection:
    """The worker's connection; see the module docstring.

    Args:
        targets: the coordinator's base URLs, parsed: one, or several replicas.
        token: the worker token, minted once and reused on every reconnect (§1.6).
        worker_version: sent as ``worker_version`` (informational).
        session: the Phoenix client session (its timeouts are the message timeout).
        delays: makes a fresh reconnect schedule; called after each successful open.
        resolver: host name to addresses; :func:`resolve` unless a test injects one.
        salt: orders the replicas for this worker (its id): see ``target.failover_order``.

    *Resource handling*: :meth:`run` owns the socket; :meth:`close` ends it and makes
    :meth:`run` return. Requests pending at that moment fail with ``disconnected``.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        token: str,
        *,
        worker_version: str,
        session: ClientSession,
        delays: Callable[[], Iterator[float]] = reconnect_delays,
        resolver: Resolver = resolve,
        salt: str = "",
    ) -> None:
        if not targets:
            raise ValueError("a connection needs at least one coordinator URL")
        self.targets = tuple(targets)
        self.target = self.targets[0]
        """The coordinator connected to now, or last (the first one before any)."""
        self._urls = {t: socket_url(t, token, worker_version) for t in self.targets}
        self._salt = salt
        self._last: Endpoint | None = None  # where the last connection was
        self._session = session
        self._delays = delays
        self._resolver = resolver
        self._waiters: dict[str, asyncio.Future[Reply]] = {}
        self._push_handlers: dict[str, Callable[[Push], None]] = {}
        self._close_handlers: dict[str, Callable[[ChannelClosed], None]] = {}
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._flush_due = False  # a write of the session's frames is scheduled
        self._deadline_moved = asyncio.Event()
        self._ticking_at: float | None = None  # what the ticker sleeps until
        self._ws: websocket.WebSocket | None = None
        self.generation = 0
        """How many times the socket has opened; a channel joined in an earlier generation
        must be joined again."""

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def url(self) -> str:
        """The base URL of the coordinator connected to now (or last), for messages."""
        return self.target.url

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def on_push(self, topic: str, handler: Callable[[Push], None]) -> None:
        """Call ``handler`` for every server push on ``topic`` (``work-available``)."""
        self._push_handlers[topic] = handler

    def on_channel_closed(self, topic: str, handler: Callable[[ChannelClosed], None]) -> None:
        """Call ``handler`` when ``topic``'s channel closes or errors (including on a drop)."""
        self._close_handlers[topic] = handler

    # -- requests ---------------------------------------------------------------------------

    async def join(self, topic: str, payload: JSON, *, timeout: float | None = None) -> JSON:
        """Join ``topic``; return the ``ok`` response.

        Raises:
            RefusedError: the server said no (``code`` is its reason, e.g. ``unauthorized``).
            NoReplyError: no answer (``timeout``, ``disconnected``, ``channel_closed``).
        """
        try:
            ref = self._session.join(topic, payload, now=time.monotonic(), timeout=timeout)
        except LocalProtocolError as exc:
            raise _not_sendable(topic, "phx_join", exc) from exc
        response = _ok(await self._await(ref), topic)
        return None if isinstance(response, bytes) else response

    async def request(
        self, topic: str, event: str, payload: JSON, *, timeout: float | None = None
    ) -> JSON | bytes:
        """Push ``event`` on a joined ``topic``; return the ``ok`` response (bytes for a binary
        reply). Raises as :meth:`join`; ``channel_closed`` also when the topic is not joined."""
        try:
            ref = self._session.push(topic, event, payload, now=time.monotonic(), timeout=timeout)
        except LocalProtocolError as exc:
            raise _not_sendable(topic, event, exc) from exc
        return _ok(await self._await(ref), topic)

    async def leave(self, topic: str, *, timeout: float = 5.0) -> None:
        """Send ``phx_leave`` for ``topic`` and return at once; never raises.

        The answer is not waited for: nothing depends on it (lightning-mock even answers a
        leave with an error, §10.7 item 14, and a minimal server may not answer at all), and
        waiting for it held a finished run's slot, and with it a SIGTERM drain, for up to
        ``timeout`` (issue 14). The session closes the channel when the answer comes or
        ``timeout`` has passed. The topic's push handler goes at once (a run channel's
        cancel handler: one per run, so they must not pile up)."""
        self._push_handlers.pop(topic, None)
        try:
            ref = self._session.leave(topic, now=time.monotonic(), timeout=timeout)
        except LocalProtocolError:
            return  # closed already, or the socket is gone
        if ref is not None:
            self._flush_soon()
            self._wake_ticker_if_sooner(ref)

    def forget(self, topic: str) -> None:
        """The server closed ``topic`` with the answer to its join, as the join asked
        (``RunJoined.left``): forget it here too, sending nothing; never raises."""
        self._push_handlers.pop(topic, None)
        with contextlib.suppress(LocalProtocolError):  # closed already, or the socket is gone
            self._session.closed_by_answer(topic)

    async def _await(self, ref: str) -> Reply:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiters[ref] = future
        self._flush_soon()
        self._wake_ticker_if_sooner(ref)
        try:
            return await future
        finally:
            self._waiters.pop(ref, None)

    # -- life -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, pump, reconnect, until :meth:`close`. Never raises for network trouble."""
        schedule = self._delays()
        while not self._closing.is_set():
            try:
                ws = await self._unless_closing(self._open())
            except UnreachableError as exc:
                delay = next(schedule)
                log.warning("%s; retrying in %.1fs", exc.message, delay)
                await self._pause(delay)
                continue
            if ws is None:
                return
            schedule = self._delays()
            log.info("connected to the coordinator at %s%s", self.url, self._via())
            await self._pump(ws)
            if not self._closing.is_set():
                delay = next(schedule)
                log.warning("lost the connection to %s; reconnecting in %.1fs", self.url, delay)
                await self._pause(delay)

    async def close(self, *, timeout: float = websocket.CLOSE_TIMEOUT) -> None:
        """End the connection for good; :meth:`run` returns soon after.

        Frames queued until now (a ``phx_leave``) go out before the close frame; then the
        server's closing of the TCP connection is waited for, at most ``timeout`` seconds,
        after which the connection is aborted. An opening in progress is abandoned."""
        self._closing.set()
        ws = self._ws
        if ws is not None:
            self._flush()
            await ws.close(timeout=timeout)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def _unless_closing(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or ``None`` if :meth:`close` comes first (``work`` is then
        cancelled: a cancelled opening aborts its connection)."""
        task = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((task, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    def _via(self) -> str:
        """`` (address)`` after the URL when the URL does not say which address it was."""
        last = self._last
        return "" if last is None or last.ip == self.target.host else f" ({last})"

    async def _open(self) -> websocket.WebSocket:
        """Open the WebSocket on the first endpoint that takes it (§10.6, the module
        docstring); remember where, so that the next opening starts after it.

        Raises:
            UnreachableError: no endpoint took it (``unreachable``), or every coordinator
                refused the worker token (``unauthorized``).
        """
        resolved = await asyncio.gather(*(self._lookup(t) for t in self.targets))
        failures = _Failures(self.targets)
        found: list[tuple[Target, list[Address]]] = []
        for target, addresses in resolved:
            if isinstance(addresses, OSError):
                failures.unresolved(target, addresses)
            else:
                found.append((target, addresses))
        order = failover_order(endpoints_of(found), salt=self._salt, after=self._last)
        for endpoint in order:
            if endpoint.target in failures.refused:
                continue  # another address of the same coordinator says the same
            try:
                ws = await self._open_at(endpoint)
            except InvalidStatus as exc:
                failures.status(endpoint, exc.response.status_code)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failures.add(endpoint.target, f"{endpoint}: {_reason(exc)}")
            else:
                self._last = endpoint
                self.target = endpoint.target
                return ws
        raise failures.error()

    async def _lookup(self, target: Target) -> tuple[Target, list[Address] | OSError]:
        try:
            return target, await self._resolver(target.host, target.port)
        except OSError as exc:
            return target, exc

    async def _open_at(self, endpoint: Endpoint) -> websocket.WebSocket:
        # No WebSocket pings: Phoenix heartbeats keep the socket alive (§1.4).
        target = endpoint.target
        async with asyncio.timeout(OPEN_TIMEOUT):
            return await websocket.connect(
                self._urls[target], host=endpoint.ip, port=target.port, max_size=MAX_FRAME_BYTES
            )

    async def _pump(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._session.connection_made(time.monotonic())
        self.generation += 1
        self._connected.set()
        ws.attach(self._on_message)
        tasks = [
            asyncio.create_task(self._tick()),
            asyncio.create_task(self._closing.wait()),
        ]
        ends: list[asyncio.Future[Any]] = [*tasks, ws.closed]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._connected.clear()
            self._ws = None
            self._dispatch(self._session.connection_lost())
            await ws.close()

    def _on_message(self, message: str | bytes) -> None:
        """One inbound frame, handled as the socket reads it."""
        try:
            if isinstance(message, str):
                events = self._session.receive_text(message)
            else:
                events = self._session.receive_binary(message)
        except RemoteProtocolError as exc:
            log.warning("ignored a frame from the coordinator: %s", exc)
            return
        self._dispatch(events)
        self._flush_soon()  # answering a reply may have queued frames (a leave, the next event)

    def _flush_soon(self) -> None:
        """Write the session's frames at the end of this pass of the event loop, together with
        any that other tasks queue meanwhile (one system call instead of one per frame)."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        frames = self._session.data_to_send()
        if frames and self._ws is not None:
            self._ws.send_texts(frames)

    async def _tick(self) -> None:
        while True:
            deadline = self._session.next_deadline()
            self._ticking_at = deadline
            self._deadline_moved.clear()
            if deadline is None:
                await self._deadline_moved.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        await self._deadline_moved.wait()
            self._ticking_at = None
            events = self._session.tick(time.monotonic())
            self._dispatch(events)
            self._flush_soon()
            if any(isinstance(e, HeartbeatTimeout) for e in events):
                log.warning("the coordinator stopped answering heartbeats; reconnecting")
                return

    def _wake_ticker_if_sooner(self, ref: str) -> None:
        """The request ``ref`` was queued: wake the ticker, but only if the request ends before
        the moment it sleeps until (most never do: the heartbeat comes first), since waking it
        for every frame costs more than the rest of the pump. Replies only ever remove
        deadlines, so they need no check: the ticker at worst wakes early and sleeps again."""
        deadline = self._session.deadline_of(ref)
        if deadline is not None and (self._ticking_at is None or deadline < self._ticking_at):
            self._deadline_moved.set()

    def _dispatch(self, events: list[ClientEvent]) -> None:
        for event in events:
            if isinstance(event, Reply):
                self._resolve(event.ref, event)
            elif isinstance(event, NoReply):
                self._resolve(event.ref, _no_reply(event))
            elif isinstance(event, Push):
                handler = self._push_handlers.get(event.topic)
                if handler is not None:
                    handler(event)
            elif isinstance(event, ChannelClosed):
                closed = self._close_handlers.get(event.topic)
                if closed is not None:
                    closed(event)

    def _resolve(self, ref: str, outcome: Reply | NoReplyError) -> None:
        future = self._waiters.get(ref)
        if future is None or future.done():
            return
        if isinstance(outcome, Reply):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


class _Failures:
    """Why an opening failed, per coordinator, turned into one :class:`UnreachableError`.
    With one URL the messages are those of a single coordinator; with several, one message
    names every URL with what each said."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self._targets = targets
        self._reasons: dict[Target, list[str]] = {t: [] for t in targets}
        self._unresolved: dict[Target, str] = {}
        self.refused: dict[Target, int] = {}
        """Coordinators that refused the worker token, with the HTTP status they gave."""

    def add(self, target: Target, reason: str) -> None:
        self._reasons[target].append(reason)

    def unresolved(self, target: Target, exc: OSError) -> None:
        self._unresolved[target] = f"{target.host!r} does not resolve ({exc.strerror or exc})"

    def status(self, endpoint: Endpoint, status: int) -> None:
        if status in (401, 403):
            self.refused[endpoint.target] = status
        else:
            self.add(endpoint.target, f"{endpoint}: HTTP {status}")

    def error(self) -> UnreachableError:
        urls = ", ".join(t.url for t in self._targets)
        code = "unauthorized" if len(self.refused) == len(self._targets) else None
        hint = ": is WORKER_SECRET the same there?" if self.refused else ""
        if len(self._targets) == 1:
            message = self._single(self._targets[0])
        else:
            parts = " | ".join(f"{t.url}: {self._reason(t)}" for t in self._targets)
            message = f"cannot reach any coordinator ({parts})"
        return UnreachableError(message + hint, url=urls, code=code)

    def _reason(self, target: Target) -> str:
        if target in self._unresolved:
            return self._unresolved[target]
        if target in self.refused:
            return f"refused the worker token (HTTP {self.refused[target]})"
        return "; ".join(self._reasons[target]) or "no addresses"

    def _single(self, target: Target) -> str:
        """The messages of a worker with one URL, as they were before there could be more."""
        url = target.url
        if target in self._unresolved:
            return f"cannot reach the coordinator at {url}: {self._unresolved[target]}"
        if target in self.refused:
            return f"the coordinator at {url} {self._reason(target)}"
        return f"cannot reach the coordinator at {url} ({self._reason(target)})"


def _ok(reply: Reply, topic: str) -> JSON | bytes:
    if reply.ok:
        return reply.response
    response = reply.response if not isinstance(reply.response, bytes) else None
    raise ErrorReply.from_wire(response).refusal(reply.request, topic)


def _no_reply(event: NoReply) -> NoReplyError:
    what = {
        "timeout": "got no reply in time",
        "disconnected": "lost its connection",
        "channel_closed": "lost its channel",
    }[event.reason.value]
    return NoReplyError(f"{event.request} on {event.topic} {what}", code=event.reason.value)


def _not_sendable(topic: str, event: str, exc: LocalProtocolError) -> NoReplyError:
    code = "disconnected" if exc.code == "not_connected" else "channel_closed"
    return NoReplyError(f"cannot send {event} on {topic}: {exc.message}", code=code)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
