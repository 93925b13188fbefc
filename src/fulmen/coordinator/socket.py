"""``/worker/websocket``: the asyncio pump around one Phoenix ``ServerSession`` (STYLE.md P1).

*Connect* (§1.7, newest Lightning): the ``token`` query parameter must be a worker token
signed with ``WORKER_SECRET`` (§2); without one, or with a bad one, the upgrade is answered
HTTP 401 and the refusal is logged with its reason, never with the token.

*Frames*: each inbound frame goes through the session; heartbeats and protocol rules are the
session's. Joins and requests are routed by topic (``worker:queue`` → channels/queue.py,
``run:<id>`` → channels/run.py) and each topic's are handled one at a time, in order, by a
task of its own, so that one slow run does not hold up another's events or a claim.

*Resource handling*: a topic's entry (its queue and task) lives while the topic is joined or
has frames to handle, and is gone once a leave (or a refused join) has been handled: a
worker's socket lives for weeks and joins a ``run:<id>`` per run. The pump ends when the
worker disconnects, breaks the protocol, or is silent for the idle timeout (§1.1: 60 s;
heartbeats come every 30 s). Requests still waiting are dropped (the worker resends what
matters after reconnecting); a claim being answered finishes, and its runs go back to the
queue since the reply cannot arrive.

*Drain* (the coordinator is stopping, :meth:`SocketPump.drain`): frames that arrive from then
on are not handled, those already received are answered, then the socket is closed with
1012 ("service restart") and the worker reconnects, here once restarted or to another
coordinator, and resends what it had not heard back about. A socket that opens meanwhile
is answered HTTP 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from fulmen.contract import JSON, WORKER_QUEUE, Event
from fulmen.coordinator.channels.base import Channel
from fulmen.coordinator.channels.queue import QueueChannel
from fulmen.coordinator.channels.run import RunChannel
from fulmen.coordinator.core import Coordinator
from fulmen.errors import RemoteProtocolError, TokenError
from fulmen.logcontext import bind
from fulmen.phoenix.frames import ReplyStatus
from fulmen.phoenix.server import (
    UNMATCHED_TOPIC,
    IdleTimeout,
    JoinRequest,
    Left,
    Request,
    ServerChannelState,
    ServerEvent,
    ServerSession,
)
from fulmen.tokens import verify_worker_token

__all__ = ["PATH", "SocketPump", "worker_socket"]

log = logging.getLogger(__name__)

PATH: Final = "/worker/websocket"
#: How long a closing socket lets its channels finish what they are doing.
DRAIN_TIMEOUT: Final = 10.0
#: RFC 6455 §7.4.1 / IANA: the server is restarting; a client should reconnect.
SERVICE_RESTART: Final = 1012

_Item = JoinRequest | Request | Left | None


async def worker_socket(websocket: WebSocket) -> None:
    """The endpoint: check the worker token, then pump until the socket ends."""
    coordinator: Coordinator = websocket.app.state.coordinator
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    try:
        claims = verify_worker_token(
            websocket.query_params.get("token"),
            coordinator.keys.worker_secret,
            now=coordinator.now(),
        )
    except TokenError as error:
        log.warning("refused a worker socket from %s: %s (%s)", peer, error.message, error.code)
        await _deny(websocket)
        return
    if coordinator.hub.draining:
        log.info("refused a worker socket from %s: the coordinator is stopping", peer)
        await _deny(websocket, 503, "Service Unavailable: the coordinator is stopping")
        return
    await websocket.accept()
    bind(worker=claims.worker_id)  # the endpoint's task: its pump and topic tasks inherit it
    log.info("worker %s connected from %s", claims.worker_id, peer)
    pump = SocketPump(websocket, coordinator, claims.worker_id)
    coordinator.hub.add(pump)
    try:
        await pump.run()
    finally:
        coordinator.hub.remove(pump)
        log.info("worker %s disconnected", claims.worker_id)


async def _deny(websocket: WebSocket, status: int = 401, text: str = "Unauthorized") -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(Response(text, status_code=status))
    else:  # servers without the denial extension answer a close before accept with 403
        await websocket.close(code=1008 if status == 401 else SERVICE_RESTART)


@dataclass
class _Topic:
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    channel: Channel | None = None
    task: asyncio.Task[None] | None = None


class SocketPump:
    """One worker socket: the session, its topics' tasks, and the way out."""

    def __init__(self, websocket: WebSocket, coordinator: Coordinator, worker_id: str) -> None:
        self._ws = websocket
        self._c = coordinator
        self._worker_id = worker_id
        self._session = ServerSession(
            now=time.monotonic(), idle_timeout=coordinator.settings.socket_idle_timeout
        )
        self._topics: dict[str, _Topic] = {}
        self._send_lock = asyncio.Lock()
        self._draining = False
        self.closed = False

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def topics(self) -> frozenset[str]:
        """The topics this socket keeps an entry (a queue and a task) for: those joined, and
        those with frames still to handle."""
        return frozenset(self._topics)

    async def run(self) -> None:
        watchdog = asyncio.get_running_loop().create_task(self._watch_idle())
        try:
            while not self.closed:
                events = await self._receive()
                for event in events:
                    self._route(event)
                await self._flush()
        finally:
            self.closed = True
            watchdog.cancel()
            await self._drain()

    async def drain(self, code: int = SERVICE_RESTART, timeout: float = DRAIN_TIMEOUT) -> None:
        """Answer what the worker has asked so far (within ``timeout``), then close the
        socket with ``code``. Frames that arrive meanwhile are not handled: the worker sends
        them again once it has reconnected."""
        self._draining = True
        waits = [topic.queue.join() for topic in self._topics.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
        await self._close(code)

    async def _watch_idle(self) -> None:
        """Close the socket once the worker has been silent for the idle timeout.

        One task per socket that sleeps until the session's deadline, rather than a timeout
        around every receive: the deadline moves with each frame, and arming and cancelling a
        timer per frame was a measurable share of the coordinator's CPU per message.
        """
        while not self.closed:
            await asyncio.sleep(max(0.0, self._session.next_deadline() - time.monotonic()))
            events = self._session.tick(time.monotonic())
            if any(isinstance(event, IdleTimeout) for event in events):
                log.warning("worker %s was silent too long; closing", self._worker_id)
                await self._close(1000)
                return

    async def _receive(self) -> list[ServerEvent]:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return []
        try:
            if message.get("text") is not None:
                return self._session.receive_text(message["text"], now=time.monotonic())
            return self._session.receive_binary(message.get("bytes") or b"", now=time.monotonic())
        except RemoteProtocolError as error:
            log.warning("worker %s broke the protocol (%s): %s", self._worker_id, error.code, error)
            await self._close(1002)
            return []

    def _route(self, event: ServerEvent) -> None:
        if isinstance(event, IdleTimeout) or self._draining:  # IdleTimeout: only tick() has it
            return
        topic = self._topics.get(event.topic)
        if topic is None:
            if isinstance(event, Left):
                return
            topic = self._topics[event.topic] = _Topic()
            topic.task = asyncio.get_running_loop().create_task(self._serve(event.topic, topic))
        topic.queue.put_nowait(event)

    async def _serve(self, name: str, topic: _Topic) -> None:
        """Handle one topic's joins, requests and leaves, in order, until the topic is closed
        with nothing more to handle, or the socket ends.

        A closed topic (left, refused) forgets itself in the same step as it finds its queue
        empty, with no ``await`` between: a frame routed before that is handled by this task,
        one routed after it makes a new entry and task (``_route``), so the order holds across
        a leave and a quick rejoin.
        """
        if name.startswith("run:"):  # this task's own context: labels the run's log lines
            bind(run_id=name.removeprefix("run:"))
        while (item := await topic.queue.get()) is not None:
            try:
                await self._handle(name, topic, item)
            except Exception:
                log.exception("worker %s: %s on %s failed", self._worker_id, _what(item), name)
                if isinstance(item, Request):
                    await self.reply(item, False, "internal error; see the coordinator's log")
            finally:
                topic.queue.task_done()
            if topic.channel is None and topic.queue.empty():
                if self._topics.get(name) is topic:
                    del self._topics[name]
                return
        topic.queue.task_done()

    async def _handle(self, name: str, topic: _Topic, item: JoinRequest | Request | Left) -> None:
        if isinstance(item, Left):
            if topic.channel is not None:
                topic.channel.left()
            topic.channel = None
        elif isinstance(item, JoinRequest):
            channel = self._channel_for(name)
            if channel is None:
                await self.refuse(item, UNMATCHED_TOPIC)
            elif await channel.join(item):
                topic.channel = channel
        elif topic.channel is not None:
            await topic.channel.handle(item)

    def _channel_for(self, topic: str) -> Channel | None:
        if topic == WORKER_QUEUE:
            return QueueChannel(
                self, self._c, on_claim=lambda languages: self._c.hub.claimed(self, languages)
            )
        if topic.startswith("run:") and len(topic) > len("run:"):
            return RunChannel(self, self._c, topic)
        return None

    async def _drain(self) -> None:
        topics = list(self._topics.values())
        tasks = [topic.task for topic in topics if topic.task is not None]
        for topic in topics:
            while not topic.queue.empty():
                topic.queue.get_nowait()
                topic.queue.task_done()
            topic.queue.put_nowait(None)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT)
            for task in pending:
                task.cancel()
        for topic in topics:
            if topic.channel is not None:
                topic.channel.left()
        self._topics.clear()

    # -- the Host side (channels answer through these) ---------------------------------------

    async def accept(
        self, join: JoinRequest, response: JSON = None, *, close: bool = False
    ) -> bool:
        return self._session.accept(join, response, close=close) and await self._flush()

    async def refuse(self, join: JoinRequest, response: JSON) -> bool:
        return self._session.refuse(join, response) and await self._flush()

    async def reply(self, request: Request, ok: bool, response: JSON | bytes) -> bool:
        status = ReplyStatus.OK if ok else ReplyStatus.ERROR
        return self._session.reply(request, status, response) and await self._flush()

    async def push(self, topic: str, event: str, payload: JSON) -> bool:
        if self.closed or self._session.channel_state(topic) is not ServerChannelState.JOINED:
            return False
        self._session.push(topic, event, payload)
        return await self._flush()

    async def push_work_available(self) -> None:
        """§4.5, for the hub: pushed only on a joined ``worker:queue``."""
        if (
            self.closed
            or self._draining
            or self._session.channel_state(WORKER_QUEUE) is not ServerChannelState.JOINED
        ):
            return
        self._session.push(WORKER_QUEUE, Event.WORK_AVAILABLE, {})
        await self._flush()

    # -- the way out ---------------------------------------------------------------------------

    async def _flush(self) -> bool:
        """Send what the session queued; false once the connection is gone."""
        async with self._send_lock:
            for frame in self._session.data_to_send():
                if self.closed:
                    return False
                try:
                    if isinstance(frame, bytes):
                        await self._ws.send_bytes(frame)
                    else:
                        await self._ws.send_text(frame)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    self.closed = True
                    return False
        return not self.closed

    async def _close(self, code: int) -> None:
        self.closed = True
        with contextlib.suppress(RuntimeError, OSError):
            await self._ws.close(code)


def _what(item: JoinRequest | Request | Left) -> str:
    if isinstance(item, Request):
        return item.event
    return "join" if isinstance(item, JoinRequest) else "leave"
