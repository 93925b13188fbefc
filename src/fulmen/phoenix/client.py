"""The client side of a Phoenix Channels V2 socket, as a sans-I/O state machine.

Theory of operation. A :class:`ClientSession` lives as long as the worker: one object across
every reconnect, so refs keep increasing as they do in the Phoenix JS client (the recorded
frames show refs continuing on a new socket). The I/O shell does four things, and nothing else:

1. after a socket opens, call :meth:`~ClientSession.connection_made`; when it closes, call
   :meth:`~ClientSession.connection_lost` and handle the events it returns;
2. feed every inbound frame to :meth:`~ClientSession.receive_text` or
   :meth:`~ClientSession.receive_binary` and handle the events they return;
3. call :meth:`~ClientSession.tick` no later than :meth:`~ClientSession.next_deadline` and
   handle its events (timeouts, and :class:`HeartbeatTimeout`, on which it closes the socket);
4. after any call, write out :meth:`~ClientSession.data_to_send`.

Requests go out with :meth:`~ClientSession.join`, :meth:`~ClientSession.push` and
:meth:`~ClientSession.leave`, each returning the ref that the matching :class:`Reply` (or
:class:`NoReply`) will carry. Every request ends in exactly one of the two.

The channel rules are the table ``TRANSITIONS`` below: a request the table does not allow
raises :class:`~fulmen.errors.LocalProtocolError` and changes nothing. In particular pushes to a
topic that is not joined are refused rather than buffered, as Phoenix JS would: buffering and
retrying belong to the worker, which knows whether a run token is still valid.

Tolerance for what real servers send (spec §10.7, fixtures/README.md): lightning-mock replies
with the event ``chan_reply_<ref>`` instead of ``phx_reply``, sometimes without a ``response``,
and pushes ``work-available`` with ref ``""``; all are accepted. Inbound messages whose
join_ref is not the channel's current one are dropped, as Phoenix JS drops them (§1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    Sender,
    decode_binary,
    decode_text,
    encode_text,
)

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "TRANSITIONS",
    "ChannelClosed",
    "ClientChannelState",
    "ClientEvent",
    "ClientSession",
    "ClientTrigger",
    "HeartbeatTimeout",
    "NoReply",
    "NoReplyReason",
    "Push",
    "Reply",
]

DEFAULT_HEARTBEAT_INTERVAL: Final = 30.0
"""Seconds between heartbeats: Phoenix JS's ``heartbeatIntervalMs`` (§1.4)."""

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds a join or push waits for its reply: the worker's message timeout (§1.5)."""

_RESERVED_EVENTS: Final = frozenset(event.value for event in ChannelEvent)
_CLIENT_ONLY_EVENTS: Final = frozenset(
    {ChannelEvent.JOIN, ChannelEvent.LEAVE, ChannelEvent.HEARTBEAT}
)


class ClientChannelState(StrEnum):
    """Where one topic stands. A topic with no channel at all is ``CLOSED``."""

    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    LEAVING = "leaving"
    ERRORED = "errored"


class ClientTrigger(StrEnum):
    """What can happen to a channel; the keys of ``TRANSITIONS``' inner tables."""

    JOIN = "join"
    JOIN_OK = "join_ok"
    JOIN_REFUSED = "join_refused"
    JOIN_TIMEOUT = "join_timeout"
    LEAVE = "leave"
    LEFT = "left"
    CLOSED_BY_SERVER = "closed_by_server"
    ERRORED_BY_SERVER = "errored_by_server"
    DISCONNECTED = "disconnected"


_S = ClientChannelState
_T = ClientTrigger

TRANSITIONS: Final[dict[ClientChannelState, dict[ClientTrigger, ClientChannelState]]] = {
    # Only a closed or errored channel may be (re)joined; an errored one is left locally.
    _S.CLOSED: {_T.JOIN: _S.JOINING},
    _S.ERRORED: {_T.JOIN: _S.JOINING, _T.LEAVE: _S.CLOSED, _T.DISCONNECTED: _S.ERRORED},
    # A join that is refused or times out errors the channel, as in Phoenix JS: the caller
    # decides whether and when to rejoin.
    _S.JOINING: {
        _T.JOIN_OK: _S.JOINED,
        _T.JOIN_REFUSED: _S.ERRORED,
        _T.JOIN_TIMEOUT: _S.ERRORED,
        _T.LEAVE: _S.LEAVING,
        _T.CLOSED_BY_SERVER: _S.CLOSED,
        _T.ERRORED_BY_SERVER: _S.ERRORED,
        _T.DISCONNECTED: _S.ERRORED,
    },
    _S.JOINED: {
        _T.LEAVE: _S.LEAVING,
        _T.CLOSED_BY_SERVER: _S.CLOSED,
        _T.ERRORED_BY_SERVER: _S.ERRORED,
        _T.DISCONNECTED: _S.ERRORED,
    },
    # Any answer to a leave, even an error (lightning-mock answers with one), or its timeout,
    # closes the channel. A join reply arriving while leaving changes nothing.
    _S.LEAVING: {
        _T.LEFT: _S.CLOSED,
        _T.JOIN_OK: _S.LEAVING,
        _T.JOIN_REFUSED: _S.LEAVING,
        _T.JOIN_TIMEOUT: _S.LEAVING,
        _T.CLOSED_BY_SERVER: _S.CLOSED,
        _T.ERRORED_BY_SERVER: _S.CLOSED,
        _T.DISCONNECTED: _S.CLOSED,
    },
}


_SERVER_ENDINGS: Final = {
    ChannelEvent.CLOSE.value: ClientTrigger.CLOSED_BY_SERVER,
    ChannelEvent.ERROR.value: ClientTrigger.ERRORED_BY_SERVER,
}


class NoReplyReason(StrEnum):
    TIMEOUT = "timeout"
    CHANNEL_CLOSED = "channel_closed"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one of our requests. ``request`` is the event we sent (``phx_join``,
    ``claim``…); ``response`` is bytes when the server replied with a binary frame."""

    topic: str
    ref: str
    request: str
    status: str
    response: JSON | bytes

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class NoReply:
    """One of our requests will never be answered; ``reason`` says why."""

    topic: str
    ref: str
    request: str
    reason: NoReplyReason


@dataclass(frozen=True, slots=True)
class Push:
    """A message the server sent on its own, such as ``work-available``."""

    topic: str
    event: str
    payload: JSON | bytes


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The server closed a channel (``phx_close``), or it crashed (``phx_error``, or the
    socket went away) and may be rejoined: then ``errored`` is true."""

    topic: str
    errored: bool


@dataclass(frozen=True, slots=True)
class HeartbeatTimeout:
    """The last heartbeat went unanswered for a whole interval: close the socket and
    reconnect, as Phoenix JS does (§1.4)."""


ClientEvent: TypeAlias = Reply | NoReply | Push | ChannelClosed | HeartbeatTimeout


@dataclass(slots=True)
class _Channel:
    join_ref: str
    state: ClientChannelState


@dataclass(slots=True)
class _Pending:
    topic: str
    request: str
    join_ref: str | None
    deadline: float


@dataclass(slots=True)
class _Heartbeat:
    due: float
    ref: str | None = None  # the unanswered heartbeat's ref, if one is out


class ClientSession:
    """One worker's view of its Phoenix socket(s); see the module docstring for the contract.

    Args:
        heartbeat_interval: seconds between heartbeats.
        default_timeout: seconds a request waits for its reply unless told otherwise.
        require_heartbeat_reply: when false, unanswered heartbeats are not reported, for
            servers that never answer them (lightning-mock, §10.7 item 14).
        first_ref: the first ref to hand out; refs then count up by one.
    """

    def __init__(
        self,
        *,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        default_timeout: float = DEFAULT_TIMEOUT,
        require_heartbeat_reply: bool = True,
        first_ref: int = 1,
    ) -> None:
        self._heartbeat_interval = heartbeat_interval
        self._default_timeout = default_timeout
        self._require_heartbeat_reply = require_heartbeat_reply
        self._next_ref = first_ref
        self._channels: dict[str, _Channel] = {}
        self._pending: dict[str, _Pending] = {}
        self._heartbeat: _Heartbeat | None = None  # None while disconnected
        self._outbox: list[str] = []

    # -- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._heartbeat is not None

    def connection_made(self, now: float) -> None:
        """A socket is open: start the heartbeat clock. Channels must be joined again."""
        self._heartbeat = _Heartbeat(due=now + self._heartbeat_interval)

    def connection_lost(self) -> list[ClientEvent]:
        """The socket is gone: every outstanding request gets a :class:`NoReply`, joined and
        joining channels become errored (and may be rejoined once reconnected), leaving
        channels are closed, and unsent frames are dropped."""
        events: list[ClientEvent] = [
            NoReply(p.topic, ref, p.request, NoReplyReason.DISCONNECTED)
            for ref, p in self._pending.items()
        ]
        self._pending.clear()
        for topic, channel in list(self._channels.items()):
            was_live = channel.state in (ClientChannelState.JOINING, ClientChannelState.JOINED)
            self._apply(topic, ClientTrigger.DISCONNECTED)
            if was_live:
                events.append(ChannelClosed(topic, errored=True))
        self._heartbeat = None
        self._outbox.clear()
        return events

    # -- requests --------------------------------------------------------------------------

    def channel_state(self, topic: str) -> ClientChannelState:
        channel = self._channels.get(topic)
        return ClientChannelState.CLOSED if channel is None else channel.state

    def join(self, topic: str, payload: JSON, *, now: float, timeout: float | None = None) -> str:
        """Queue a ``phx_join`` for ``topic``; return its ref, which is also the join ref.

        Raises:
            LocalProtocolError: ``not_connected``; ``reserved_topic`` for ``phoenix``;
                ``illegal_transition`` unless the topic is closed or errored.
        """
        self._check_connected()
        if topic == PHOENIX_TOPIC:
            raise LocalProtocolError("the phoenix topic cannot be joined", code="reserved_topic")
        self._check_allowed(topic, ClientTrigger.JOIN)
        ref = self._make_ref()
        self._channels[topic] = _Channel(join_ref=ref, state=ClientChannelState.JOINING)
        self._send(topic, ChannelEvent.JOIN, payload, ref, ref, now, timeout)
        return ref

    def push(
        self, topic: str, event: str, payload: JSON, *, now: float, timeout: float | None = None
    ) -> str:
        """Queue ``event`` on a joined ``topic``; return the ref its reply will carry.

        Raises:
            LocalProtocolError: ``not_connected``; ``reserved_event`` for Phoenix's own
                events; ``not_joined`` unless the topic is joined.
        """
        self._check_connected()
        if event in _RESERVED_EVENTS:
            raise LocalProtocolError(f"{event!r} is reserved by Phoenix", code="reserved_event")
        channel = self._channels.get(topic)
        if channel is None or channel.state is not ClientChannelState.JOINED:
            raise LocalProtocolError(
                f"cannot push {event!r}: {topic!r} is {self.channel_state(topic)}, not joined",
                code="not_joined",
            )
        ref = self._make_ref()
        self._send(topic, event, payload, channel.join_ref, ref, now, timeout)
        return ref

    def leave(self, topic: str, *, now: float, timeout: float | None = None) -> str | None:
        """Queue a ``phx_leave``; return its ref. An errored channel has nothing to leave on
        the server, so it is closed locally and ``None`` is returned.

        Raises:
            LocalProtocolError: ``not_connected`` (for a live channel);
                ``illegal_transition`` if the topic is closed or already leaving.
        """
        self._check_allowed(topic, ClientTrigger.LEAVE)
        channel = self._channels[topic]
        if channel.state is ClientChannelState.ERRORED:
            self._apply(topic, ClientTrigger.LEAVE)
            return None
        self._check_connected()
        ref = self._make_ref()
        self._apply(topic, ClientTrigger.LEAVE)
        self._send(topic, ChannelEvent.LEAVE, {}, channel.join_ref, ref, now, timeout)
        return ref

    def closed_by_answer(self, topic: str) -> None:
        """The server closed a joined channel with the answer to its join (it said so there, as
        the client asked): forget it as if it had sent ``phx_close``, with no event.

        Raises:
            LocalProtocolError: ``illegal_transition`` if the topic is not joined.
        """
        self._check_allowed(topic, ClientTrigger.CLOSED_BY_SERVER)
        self._apply(topic, ClientTrigger.CLOSED_BY_SERVER)

    def data_to_send(self) -> list[str]:
        """Return and forget the text frames queued since the last call, in order."""
        frames, self._outbox = self._outbox, []
        return frames

    # -- time ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The time by which :meth:`tick` must next be called, or ``None`` if nothing waits."""
        deadlines = [p.deadline for p in self._pending.values()]
        if self._heartbeat is not None:
            deadlines.append(self._heartbeat.due)
        return min(deadlines, default=None)

    def deadline_of(self, ref: str) -> float | None:
        """When the request ``ref`` times out, or ``None`` if it is not outstanding. Cheaper
        than :meth:`next_deadline` for a shell that only needs to know whether a new request
        ends before the moment it next ticks."""
        pending = self._pending.get(ref)
        return None if pending is None else pending.deadline

    def tick(self, now: float) -> list[ClientEvent]:
        """Expire requests whose deadline has passed and send a heartbeat if one is due."""
        events: list[ClientEvent] = []
        expired = sorted((p.deadline, ref) for ref, p in self._pending.items() if p.deadline <= now)
        for _, ref in expired:
            events.extend(self._expire(ref, now))
        events.extend(self._heartbeat_tick(now))
        return events

    def _expire(self, ref: str, now: float) -> list[ClientEvent]:
        pending = self._pending.pop(ref)
        if pending.request == ChannelEvent.JOIN:
            channel = self._channels.get(pending.topic)
            if channel is not None and channel.join_ref == ref:
                self._apply(pending.topic, ClientTrigger.JOIN_TIMEOUT)
                # Phoenix JS leaves a timed-out join so a late server-side join is undone.
                if self.connected and channel.state is ClientChannelState.ERRORED:
                    leave = Message(ref, self._make_ref(), pending.topic, ChannelEvent.LEAVE, {})
                    self._outbox.append(encode_text(leave))
        elif pending.request == ChannelEvent.LEAVE:
            self._apply_if_current(pending, ClientTrigger.LEFT)
        return [NoReply(pending.topic, ref, pending.request, NoReplyReason.TIMEOUT)]

    def _heartbeat_tick(self, now: float) -> list[ClientEvent]:
        beat = self._heartbeat
        if beat is None or now < beat.due:
            return []
        if beat.ref is not None and self._require_heartbeat_reply:
            beat.due = now + self._heartbeat_interval  # report once per interval, not per tick
            return [HeartbeatTimeout()]
        beat.ref = self._make_ref()
        beat.due = now + self._heartbeat_interval
        message = Message(None, beat.ref, PHOENIX_TOPIC, ChannelEvent.HEARTBEAT, {})
        self._outbox.append(encode_text(message))
        return []

    # -- inbound ---------------------------------------------------------------------------

    def receive_text(self, data: str | bytes) -> list[ClientEvent]:
        """Handle one inbound text frame.

        Raises:
            RemoteProtocolError: the frame does not decode (codes of ``frames.DECODE_ERRORS``),
                a reply's payload has no string ``status`` (``bad_reply``), a reply answers a
                request on another topic (``reply_topic_mismatch``), or the server sent an
                event only clients send (``unexpected_event``). State is unchanged.
        """
        message = decode_text(data)
        if _is_reply(message.event):
            status, response = _reply_body(message.payload)
            return self._on_reply(message.topic, message.ref, status, response)
        return self._on_server_message(
            message.topic, message.join_ref, message.event, message.payload
        )

    def receive_binary(self, data: bytes) -> list[ClientEvent]:
        """Handle one inbound binary frame; see :meth:`receive_text` for errors."""
        frame = decode_binary(data, sender=Sender.SERVER)
        if isinstance(frame, BinaryReply):
            return self._on_reply(frame.topic, frame.ref, frame.status, frame.response)
        if isinstance(frame, BinaryPush):
            return self._on_server_message(frame.topic, frame.join_ref, frame.event, frame.payload)
        return self._on_server_message(frame.topic, None, frame.event, frame.payload)

    def _on_reply(
        self, topic: str, ref: str | None, status: str, response: JSON | bytes
    ) -> list[ClientEvent]:
        if not ref:
            return []  # nothing of ours can be matched to it
        beat = self._heartbeat
        if beat is not None and ref == beat.ref and topic == PHOENIX_TOPIC:
            beat.ref = None
            return []
        pending = self._pending.get(ref)
        if pending is None:
            return []  # a late reply to a request that already timed out, or a stray one
        if pending.topic != topic:
            raise RemoteProtocolError(
                f"reply {ref} came on {topic!r} for a request on {pending.topic!r}",
                code="reply_topic_mismatch",
            )
        del self._pending[ref]
        if pending.request == ChannelEvent.JOIN:
            trigger = ClientTrigger.JOIN_OK if status == "ok" else ClientTrigger.JOIN_REFUSED
            self._apply_if_current(pending, trigger)
        elif pending.request == ChannelEvent.LEAVE:
            self._apply_if_current(pending, ClientTrigger.LEFT)
        return [Reply(topic, ref, pending.request, status, response)]

    def _on_server_message(
        self, topic: str, join_ref: str | None, event: str, payload: JSON | bytes
    ) -> list[ClientEvent]:
        if event in _CLIENT_ONLY_EVENTS:
            raise RemoteProtocolError(f"a server sent {event!r}", code="unexpected_event")
        channel = self._channels.get(topic)
        if channel is None or join_ref not in (None, "", channel.join_ref):
            return []  # not ours, or meant for an earlier join of this topic
        if event in (ChannelEvent.CLOSE, ChannelEvent.ERROR):
            trigger = _SERVER_ENDINGS[event]
            if trigger not in TRANSITIONS[channel.state]:
                return []  # an errored channel is already over for the server
            return self._end_channel(topic, trigger, errored=event == ChannelEvent.ERROR)
        if channel.state is not ClientChannelState.JOINED:
            return []
        return [Push(topic, event, payload)]

    def _end_channel(
        self, topic: str, trigger: ClientTrigger, *, errored: bool
    ) -> list[ClientEvent]:
        events: list[ClientEvent] = []
        for ref, pending in list(self._pending.items()):
            if pending.topic == topic:
                del self._pending[ref]
                events.append(NoReply(topic, ref, pending.request, NoReplyReason.CHANNEL_CLOSED))
        self._apply(topic, trigger)
        events.append(ChannelClosed(topic, errored=errored))
        return events

    # -- helpers ---------------------------------------------------------------------------

    def _make_ref(self) -> str:
        ref = str(self._next_ref)
        self._next_ref += 1
        return ref

    def _send(
        self,
        topic: str,
        event: str,
        payload: JSON,
        join_ref: str,
        ref: str,
        now: float,
        timeout: float | None,
    ) -> None:
        text = encode_text(Message(join_ref, ref, topic, event, payload))
        deadline = now + (self._default_timeout if timeout is None else timeout)
        self._pending[ref] = _Pending(topic, event, join_ref, deadline)
        self._outbox.append(text)

    def _check_connected(self) -> None:
        if not self.connected:
            raise LocalProtocolError("the socket is not connected", code="not_connected")

    def _check_allowed(self, topic: str, trigger: ClientTrigger) -> None:
        state = self.channel_state(topic)
        if trigger not in TRANSITIONS[state]:
            raise LocalProtocolError(
                f"cannot {trigger} {topic!r} while it is {state}", code="illegal_transition"
            )

    def _apply(self, topic: str, trigger: ClientTrigger) -> None:
        channel = self._channels[topic]
        channel.state = TRANSITIONS[channel.state][trigger]
        if channel.state is ClientChannelState.CLOSED:
            del self._channels[topic]

    def _apply_if_current(self, pending: _Pending, trigger: ClientTrigger) -> None:
        """Apply ``trigger`` only if the request belongs to the channel's current join:
        answers to an earlier incarnation of the topic must not move the new one."""
        channel = self._channels.get(pending.topic)
        if (
            channel is not None
            and channel.join_ref == pending.join_ref
            and trigger in TRANSITIONS[channel.state]
        ):
            self._apply(pending.topic, trigger)


def _is_reply(event: str) -> bool:
    # lightning-mock names its replies chan_reply_<ref> (§10.7 item 14).
    return event == ChannelEvent.REPLY or event.startswith("chan_reply_")


def _reply_body(payload: JSON) -> tuple[str, JSON]:
    status = payload.get("status") if isinstance(payload, dict) else None
    if not isinstance(status, str) or not isinstance(payload, dict):
        raise RemoteProtocolError("a reply's payload has no string status", code="bad_reply")
    return status, payload.get("response")
