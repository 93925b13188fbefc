"""The server side of one Phoenix Channels V2 socket, as a sans-I/O state machine.

Theory of operation. The coordinator makes one :class:`ServerSession` per accepted WebSocket.
Its pump feeds each inbound frame to :meth:`~ServerSession.receive_text` or
:meth:`~ServerSession.receive_binary`, acts on the returned events, calls
:meth:`~ServerSession.tick` by :meth:`~ServerSession.next_deadline`, and writes out
:meth:`~ServerSession.data_to_send` after every call. The session decides nothing about
Lightning: it reports a :class:`JoinRequest` and waits for the application to
:meth:`~ServerSession.accept` or :meth:`~ServerSession.refuse` it, and it reports each
:class:`Request` on a joined topic and waits for :meth:`~ServerSession.reply`.

What it does on its own, as Phoenix does (spec §1.3, §1.4):

* heartbeats on ``phoenix`` are answered ``ok`` with a null join ref;
* a push to a topic that is not joined gets ``{"reason": "unmatched topic"}`` [INFERRED in
  the spec from Phoenix's socket code; no Lightning-specific text exists];
* ``phx_leave`` is answered ``ok`` and followed by ``phx_close``, and reported as :class:`Left`;
* a second ``phx_join`` of a joined topic closes the old channel (``phx_close`` with the old
  join ref, reported as :class:`Left`) before the new join is reported;
* messages carrying an old join ref are dropped without a reply, as Phoenix drops them when a
  client races a close.

Replies are matched to requests: each ref may be answered once, and a reply for a channel
that has since gone (left, replaced, closed) is quietly not sent, because the client has
already moved on. The channel states are the table ``TRANSITIONS``.

Reply payloads are written ``{"response": …, "status": …}``: Phoenix's serializer builds that
map with atom keys, which Erlang orders alphabetically [INFERRED; clients do not care].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

from fulmen.errors import LocalProtocolError, RemoteProtocolError
from fulmen.phoenix.frames import (
    JSON,
    PHOENIX_TOPIC,
    BinaryPush,
    BinaryReply,
    ChannelEvent,
    Message,
    ReplyStatus,
    Sender,
    decode_binary,
    decode_text,
    encode_binary,
    encode_text,
)

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "TRANSITIONS",
    "UNMATCHED_TOPIC",
    "IdleTimeout",
    "JoinRequest",
    "Left",
    "LeftReason",
    "Request",
    "ServerChannelState",
    "ServerEvent",
    "ServerSession",
    "ServerTrigger",
]

DEFAULT_IDLE_TIMEOUT: Final = 60.0
"""Seconds without any inbound frame before Phoenix gives up on a socket (§1.1)."""

UNMATCHED_TOPIC: Final[dict[str, JSON]] = {"reason": "unmatched topic"}

_RESERVED_EVENTS: Final = frozenset(event.value for event in ChannelEvent)


class ServerChannelState(StrEnum):
    """Where one topic of this socket stands; a topic with no channel is ``CLOSED``."""

    CLOSED = "closed"
    JOINING = "joining"  # the application has not yet accepted or refused the join
    JOINED = "joined"


class ServerTrigger(StrEnum):
    JOIN = "join"
    ACCEPT = "accept"
    REFUSE = "refuse"
    LEAVE = "leave"
    CLOSE = "close"


_S = ServerChannelState
_T = ServerTrigger

TRANSITIONS: Final[dict[ServerChannelState, dict[ServerTrigger, ServerChannelState]]] = {
    _S.CLOSED: {_T.JOIN: _S.JOINING},
    # A new join of a live topic replaces the old channel: JOIN is legal in every state.
    # A client may leave before we have decided on its join (Phoenix JS does, when a join
    # times out); the decision then comes too late and is not sent.
    _S.JOINING: {
        _T.ACCEPT: _S.JOINED,
        _T.REFUSE: _S.CLOSED,
        _T.LEAVE: _S.CLOSED,
        _T.JOIN: _S.JOINING,
    },
    _S.JOINED: {_T.LEAVE: _S.CLOSED, _T.CLOSE: _S.CLOSED, _T.JOIN: _S.JOINING},
}


class LeftReason(StrEnum):
    LEFT = "left"  # the client sent phx_leave
    REPLACED = "replaced"  # the client joined the same topic again


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A client asks to join ``topic``: answer with :meth:`ServerSession.accept` or
    :meth:`ServerSession.refuse`."""

    topic: str
    join_ref: str
    ref: str
    payload: JSON


@dataclass(frozen=True, slots=True)
class Request:
    """A client's event on a joined topic: answer with :meth:`ServerSession.reply`.
    ``payload`` is bytes when the client sent a binary push."""

    topic: str
    join_ref: str
    ref: str
    event: str
    payload: JSON | bytes


@dataclass(frozen=True, slots=True)
class Left:
    """A channel the application knew about is gone at the client's initiative."""

    topic: str
    join_ref: str
    reason: LeftReason


@dataclass(frozen=True, slots=True)
class IdleTimeout:
    """Nothing arrived for the idle timeout: close the socket."""


ServerEvent: TypeAlias = JoinRequest | Request | Left | IdleTimeout


@dataclass(slots=True)
class _Channel:
    join_ref: str
    state: ServerChannelState
    unanswered: set[str] = field(default_factory=set)


class ServerSession:
    """One client socket as the server sees it; see the module docstring for the contract.

    Args:
        now: when the socket was accepted (starts the idle clock).
        idle_timeout: seconds of inbound silence after which :meth:`tick` reports
            :class:`IdleTimeout`.
    """

    def __init__(self, *, now: float, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self._idle_timeout = idle_timeout
        self._last_seen = now
        self._channels: dict[str, _Channel] = {}
        self._outbox: list[str | bytes] = []

    def channel_state(self, topic: str) -> ServerChannelState:
        channel = self._channels.get(topic)
        return ServerChannelState.CLOSED if channel is None else channel.state

    @property
    def topics(self) -> frozenset[str]:
        """The topics the session keeps state for: those joining or joined. A closed topic
        keeps nothing (its unanswered refs go with it), so a socket that lives for weeks and
        joins a topic per run does not grow."""
        return frozenset(self._channels)

    def data_to_send(self) -> list[str | bytes]:
        """Return and forget the queued frames: ``str`` for text frames, ``bytes`` for binary."""
        frames, self._outbox = self._outbox, []
        return frames

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        return self._last_seen + self._idle_timeout

    def tick(self, now: float) -> list[ServerEvent]:
        return [IdleTimeout()] if now >= self.next_deadline() else []

    # -- inbound ---------------------------------------------------------------------------

    def receive_text(self, data: str | bytes, *, now: float) -> list[ServerEvent]:
        """Handle one inbound text frame.

        Raises:
            RemoteProtocolError: the frame does not decode (codes of ``frames.DECODE_ERRORS``),
                lacks a ref (``missing_ref``), is a join without a join ref
                (``missing_join_ref``), reuses the ref of a request still unanswered
                (``duplicate_ref``), or is an event only servers send (``unexpected_event``).
                State is unchanged.
        """
        message = decode_text(data)
        self._last_seen = now
        return self._on_message(
            message.topic, message.join_ref, message.ref, message.event, message.payload
        )

    def receive_binary(self, data: bytes, *, now: float) -> list[ServerEvent]:
        """Handle one inbound binary frame (a client push); errors as :meth:`receive_text`."""
        frame = decode_binary(data, sender=Sender.CLIENT)
        if not isinstance(frame, BinaryPush):  # pragma: no cover - the codec only makes pushes
            raise RemoteProtocolError("a client sent a non-push binary frame", code="unknown_kind")
        self._last_seen = now
        return self._on_message(
            frame.topic, frame.join_ref or None, frame.ref, frame.event, frame.payload
        )

    def _on_message(
        self, topic: str, join_ref: str | None, ref: str | None, event: str, payload: JSON | bytes
    ) -> list[ServerEvent]:
        if not ref:
            raise RemoteProtocolError(f"{event!r} on {topic!r} has no ref", code="missing_ref")
        if topic == PHOENIX_TOPIC:
            return self._on_socket_message(ref, event)
        if event == ChannelEvent.JOIN:
            return self._on_join(topic, join_ref, ref, payload)
        if event in _RESERVED_EVENTS and event != ChannelEvent.LEAVE:
            raise RemoteProtocolError(f"a client sent {event!r}", code="unexpected_event")
        channel = self._channels.get(topic)
        if channel is not None and join_ref not in (None, channel.join_ref):
            return []  # meant for an earlier join of this topic, which we already closed
        if channel is not None and event == ChannelEvent.LEAVE:
            return self._on_leave(topic, channel, ref)
        if channel is None or channel.state is not ServerChannelState.JOINED:
            self._queue_reply(join_ref, ref, topic, ReplyStatus.ERROR, UNMATCHED_TOPIC)
            return []
        if ref in channel.unanswered:
            raise RemoteProtocolError(
                f"ref {ref} is already awaiting a reply", code="duplicate_ref"
            )
        channel.unanswered.add(ref)
        return [Request(topic, channel.join_ref, ref, event, payload)]

    def _on_socket_message(self, ref: str, event: str) -> list[ServerEvent]:
        if event == ChannelEvent.HEARTBEAT:
            self._queue_reply(None, ref, PHOENIX_TOPIC, ReplyStatus.OK, {})
        else:
            self._queue_reply(None, ref, PHOENIX_TOPIC, ReplyStatus.ERROR, UNMATCHED_TOPIC)
        return []

    def _on_join(
        self, topic: str, join_ref: str | None, ref: str, payload: JSON | bytes
    ) -> list[ServerEvent]:
        if not join_ref:
            raise RemoteProtocolError(
                f"a join of {topic!r} has no join ref", code="missing_join_ref"
            )
        if isinstance(payload, bytes):
            raise RemoteProtocolError("a join payload must be JSON", code="binary_join")
        events: list[ServerEvent] = []
        old = self._channels.get(topic)
        if old is not None:
            self._queue_close(topic, old.join_ref)
            events.append(Left(topic, old.join_ref, LeftReason.REPLACED))
        state = TRANSITIONS[self.channel_state(topic)][ServerTrigger.JOIN]
        self._channels[topic] = _Channel(join_ref, state)
        events.append(JoinRequest(topic, join_ref, ref, payload))
        return events

    def _on_leave(self, topic: str, channel: _Channel, ref: str) -> list[ServerEvent]:
        self._queue_reply(channel.join_ref, ref, topic, ReplyStatus.OK, {})
        self._queue_close(topic, channel.join_ref)
        self._apply(topic, ServerTrigger.LEAVE)
        return [Left(topic, channel.join_ref, LeftReason.LEFT)]

    # -- outbound --------------------------------------------------------------------------

    def accept(self, join: JoinRequest, response: JSON = None, *, close: bool = False) -> bool:
        """Reply ``ok`` to ``join`` (with ``{}`` unless told otherwise) and mark the topic joined.
        With ``close``, the topic is closed again at once, with no ``phx_close``: the answer
        says so to a client that asked for it (a run join that carried the run's end).

        Returns false, sending nothing, if the join was superseded meanwhile.
        """
        channel = self._current(join.topic, join.join_ref)
        if channel is None or channel.state is not ServerChannelState.JOINING:
            return False
        self._apply(join.topic, ServerTrigger.ACCEPT)
        self._queue_reply(join.join_ref, join.ref, join.topic, ReplyStatus.OK, _or_empty(response))
        if close:
            self._apply(join.topic, ServerTrigger.CLOSE)
        return True

    def refuse(self, join: JoinRequest, response: JSON) -> bool:
        """Reply ``error`` to ``join``; the topic stays closed. False if it was superseded."""
        channel = self._current(join.topic, join.join_ref)
        if channel is None or channel.state is not ServerChannelState.JOINING:
            return False
        self._apply(join.topic, ServerTrigger.REFUSE)
        self._queue_reply(join.join_ref, join.ref, join.topic, ReplyStatus.ERROR, response)
        return True

    def reply(self, request: Request, status: ReplyStatus, response: JSON | bytes) -> bool:
        """Answer ``request``; ``bytes`` go out as a binary reply (the ``fetch:dataclip`` way).

        Returns false, sending nothing, if the channel has gone since the request arrived.

        Raises:
            LocalProtocolError: ``already_replied`` if this request was answered before.
        """
        channel = self._current(request.topic, request.join_ref)
        if channel is None:
            return False
        if request.ref not in channel.unanswered:
            raise LocalProtocolError(
                f"request {request.ref} ({request.event!r}) was already answered",
                code="already_replied",
            )
        channel.unanswered.discard(request.ref)
        self._queue_reply(request.join_ref, request.ref, request.topic, status, response)
        return True

    def push(self, topic: str, event: str, payload: JSON | bytes) -> None:
        """Send ``event`` to the client on a joined topic (``work-available``, say).

        Raises:
            LocalProtocolError: ``reserved_event`` or ``not_joined``.
        """
        if event in _RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is reserved by Phoenix", code="reserved_event")
        channel = self._joined(topic)
        if isinstance(payload, bytes):
            frame = BinaryPush(channel.join_ref, "", topic, event, payload)
            self._outbox.append(encode_binary(frame, sender=Sender.SERVER))
        else:
            self._outbox.append(encode_text(Message(channel.join_ref, None, topic, event, payload)))

    def close(self, topic: str) -> None:
        """Close a joined channel (``phx_close``); unanswered requests on it are dropped."""
        channel = self._joined(topic)
        self._queue_close(topic, channel.join_ref)
        self._apply(topic, ServerTrigger.CLOSE)

    def error(self, topic: str) -> None:
        """Report a crashed channel (``phx_error``): Phoenix clients rejoin it."""
        channel = self._joined(topic)
        message = Message(channel.join_ref, channel.join_ref, topic, ChannelEvent.ERROR, {})
        self._outbox.append(encode_text(message))
        self._apply(topic, ServerTrigger.CLOSE)

    # -- helpers ---------------------------------------------------------------------------

    def _current(self, topic: str, join_ref: str) -> _Channel | None:
        channel = self._channels.get(topic)
        return channel if channel is not None and channel.join_ref == join_ref else None

    def _apply(self, topic: str, trigger: ServerTrigger) -> None:
        channel = self._channels[topic]
        channel.state = TRANSITIONS[channel.state][trigger]
        if channel.state is ServerChannelState.CLOSED:
            del self._channels[topic]

    def _joined(self, topic: str) -> _Channel:
        channel = self._channels.get(topic)
        if channel is None or channel.state is not ServerChannelState.JOINED:
            raise LocalProtocolError(f"{topic!r} is not joined", code="not_joined")
        return channel

    def _queue_reply(
        self, join_ref: str | None, ref: str, topic: str, status: str, response: JSON | bytes
    ) -> None:
        if isinstance(response, bytes):
            frame = BinaryReply(join_ref or "", ref, topic, status, response)
            self._outbox.append(encode_binary(frame, sender=Sender.SERVER))
            return
        payload: JSON = {"response": response, "status": status}
        self._outbox.append(encode_text(Message(join_ref, ref, topic, ChannelEvent.REPLY, payload)))

    def _queue_close(self, topic: str, join_ref: str) -> None:
        message = Message(join_ref, join_ref, topic, ChannelEvent.CLOSE, {})
        self._outbox.append(encode_text(message))


def _or_empty(response: JSON) -> JSON:
    return {} if response is None else response
