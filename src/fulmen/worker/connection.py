"""The worker's one WebSocket to its coordinator: the asyncio pump around
:class:`~fulmen.phoenix.client.ClientSession` (STYLE.md P1).

Theory of operation. :meth:`Connection.run` loops for the worker's whole life: connect, pump
frames until the socket goes, reconnect after a capped, jittered delay. The session is one
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

Addresses (§10.6): the host name is resolved (``target.resolve``) and every address is tried
in turn, IPv4 first, then in the resolver's order, so ``localhost`` works whether the resolver
answers ``::1`` or ``127.0.0.1`` first and whichever of the two the coordinator listens on.
The request keeps the name in its ``Host`` header (and for TLS).

The socket URL carries the worker token, so it is never logged: messages name the base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from websockets.exceptions import InvalidHandshake, InvalidStatus

from fulmen import backoff
from fulmen.contract import ErrorReply
from fulmen.errors import (
    LocalProtocolError,
    NoReplyError,
    RefusedError,
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
from fulmen.worker.target import Resolver, Target, prefer_ipv4, resolve, socket_url

__all__ = ["Connection", "reconnect_delays"]

log = logging.getLogger("fulmen.worker")

MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
"""Inbound frames we accept: a plan or dataclip reply can be over 10 MB (§1.1)."""
OPEN_TIMEOUT: Final = 10.0


def reconnect_delays() -> Iterator[float]:
    """Reconnect delays: 1 s, 2 s, 4 s… capped at 30 s, each shortened by up to half at
    random, so that workers dropped together by a restarting coordinator do not return
    together. (ws-worker waits 1 s, 2 s, 3 s… without a cap, §1.6.)"""
    return backoff.delays(1.0, 30.0, factor=2.0, jitter=0.5)


class Connection:
    """The worker's connection; see the module docstring.

    Args:
        target: the coordinator's base URL, parsed.
        token: the worker token, minted once and reused on every reconnect (§1.6).
        worker_version: sent as ``worker_version`` (informational).
        session: the Phoenix client session (its timeouts are the message timeout).
        delays: makes a fresh reconnect schedule; called after each successful open.
        resolver: host name to addresses; :func:`resolve` unless a test injects one.

    *Resource handling*: :meth:`run` owns the socket; :meth:`close` ends it and makes
    :meth:`run` return. Requests pending at that moment fail with ``disconnected``.
    """

    def __init__(
        self,
        target: Target,
        token: str,
        *,
        worker_version: str,
        session: ClientSession,
        delays: Callable[[], Iterator[float]] = reconnect_delays,
        resolver: Resolver = resolve,
    ) -> None:
        self.target = target
        self._url = socket_url(target, token, worker_version)
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
        """Leave ``topic``, waiting briefly for the answer; never raises (lightning-mock even
        answers a leave with an error, §10.7 item 14). Its push handler goes with it (a run
        channel's cancel handler: one per run, so they must not pile up)."""
        self._push_handlers.pop(topic, None)
        try:
            ref = self._session.leave(topic, now=time.monotonic(), timeout=timeout)
        except LocalProtocolError:
            return  # closed already, or the socket is gone
        if ref is None:
            return
        with contextlib.suppress(NoReplyError):
            await self._await(ref)

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
                ws = await self._open()
            except UnreachableError as exc:
                delay = next(schedule)
                log.warning("%s; retrying in %.1fs", exc.message, delay)
                await self._pause(delay)
                continue
            schedule = self._delays()
            log.info("connected to the coordinator at %s", self.target.url)
            await self._pump(ws)
            if not self._closing.is_set():
                delay = next(schedule)
                log.warning(
                    "lost the connection to %s; reconnecting in %.1fs", self.target.url, delay
                )
                await self._pause(delay)

    async def close(self) -> None:
        """End the connection for good; :meth:`run` returns soon after."""
        self._closing.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def _open(self) -> websocket.WebSocket:
        """Open the WebSocket on the first address that takes it (§10.6).

        Raises:
            UnreachableError: no address took it (``unreachable``), or the coordinator refused
                the worker token (``unauthorized``).
        """
        url = self.target.url
        try:
            addresses = await self._resolver(self.target.host, self.target.port)
        except OSError as exc:
            raise UnreachableError(
                f"cannot reach the coordinator at {url}: {self.target.host!r} does not "
                f"resolve ({exc.strerror or exc})",
                url=url,
            ) from exc
        failures: list[str] = []
        for _, ip in prefer_ipv4(addresses):
            try:
                return await self._open_at(ip)
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    raise UnreachableError(
                        f"the coordinator at {url} refused the worker token "
                        f"(HTTP {exc.response.status_code}): is WORKER_SECRET the same there?",
                        url=url,
                        code="unauthorized",
                    ) from exc
                failures.append(f"{_show(ip)}: HTTP {exc.response.status_code}")
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failures.append(f"{_show(ip)}: {_reason(exc)}")
        tried = "; ".join(failures) or "no addresses"
        raise UnreachableError(f"cannot reach the coordinator at {url} ({tried})", url=url)

    async def _open_at(self, ip: str) -> websocket.WebSocket:
        # No WebSocket pings: Phoenix heartbeats keep the socket alive (§1.4).
        async with asyncio.timeout(OPEN_TIMEOUT):
            return await websocket.connect(
                self._url, host=ip, port=self.target.port, max_size=MAX_FRAME_BYTES
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


def _ok(reply: Reply, topic: str) -> JSON | bytes:
    if reply.ok:
        return reply.response
    response = reply.response if not isinstance(reply.response, bytes) else None
    error = ErrorReply.from_wire(response)
    raise RefusedError(
        f"{reply.request} on {topic} was refused: {error.describe()}",
        response=response,
        code=error.reason or "refused",
    )


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


def _show(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
