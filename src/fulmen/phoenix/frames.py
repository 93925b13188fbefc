"""Phoenix Channels V2 frames: the five-element JSON text frame and the binary frames.

This module turns wire data into frame values and back. It knows nothing about sessions,
topics or Lightning: it only checks that a frame is well formed.

Text frames (spec §1.2) are one JSON array ``[join_ref, ref, topic, event, payload]``. We
encode them compactly with raw UTF-8 and keys in insertion order, which is byte for byte what
the Phoenix JS client's ``JSON.stringify`` produces for the same value; the recorded frames in
``tests/fixtures/phoenix`` hold us to that.

Binary frames (spec §1.2, Phoenix JS ``serializer.js``) start with a kind byte and one length
byte per string field; the payload is the raw remainder. Their layout depends on who sends
them, which is why the binary functions take a ``sender``:

===============  ========  ================================================================
sender           kind      header after the kind byte
===============  ========  ================================================================
client           0 push    len(join_ref) len(ref) len(topic) len(event)
server           0 push    len(join_ref) len(topic) len(event)          (no ref)
server           1 reply   len(join_ref) len(ref) len(topic) len(status)
server           2 bcast   len(topic) len(event)                        (no refs)
===============  ========  ================================================================

Only the server's binary reply is used by Lightning (the ``fetch:dataclip`` reply, §5.5); the
other kinds are here so that the codec is total over what a Phoenix peer may send. Lengths are
UTF-8 byte counts, as in the Elixir serializer, so each field is at most 255 bytes. Binary
frames carry no ``null``: an absent ref is the empty string, as on the wire.

Error handling: every decoder either returns a frame or raises
:class:`~fulmen.errors.RemoteProtocolError` with one of the ``code`` values listed in
``DECODE_ERRORS``; anything else escaping is a bug (the property tests check this). Encoders
raise :class:`~fulmen.errors.LocalProtocolError`, because a frame we cannot encode is ours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final, TypeAlias

import orjson

from fulmen.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DECODE_ERRORS",
    "JSON",
    "PHOENIX_TOPIC",
    "BinaryBroadcast",
    "BinaryFrame",
    "BinaryKind",
    "BinaryPush",
    "BinaryReply",
    "ChannelEvent",
    "Message",
    "ReplyStatus",
    "Sender",
    "decode_binary",
    "decode_text",
    "encode_binary",
    "encode_text",
]

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
"""A decoded JSON value. Kept local so that ``fulmen.phoenix`` depends only on ``errors``."""

PHOENIX_TOPIC: Final = "phoenix"
"""The socket-level topic: heartbeats travel on it and it is never joined."""


class ChannelEvent(StrEnum):
    """The event names Phoenix reserves for channel plumbing (spec §1.3)."""

    JOIN = "phx_join"
    REPLY = "phx_reply"
    LEAVE = "phx_leave"
    CLOSE = "phx_close"
    ERROR = "phx_error"
    HEARTBEAT = "heartbeat"


class ReplyStatus(StrEnum):
    """The ``status`` of a reply payload. Phoenix JS also has a local ``timeout`` status,
    which never travels on the wire; sessions report it as ``NoReply`` instead."""

    OK = "ok"
    ERROR = "error"


class Sender(StrEnum):
    """Who sent (or will send) a binary frame; the kind-0 layout differs between the two."""

    CLIENT = "client"
    SERVER = "server"


class BinaryKind(IntEnum):
    PUSH = 0
    REPLY = 1
    BROADCAST = 2


DECODE_ERRORS: Final = (
    "not_text",  # the input is not str or bytes
    "invalid_json",  # not UTF-8 JSON, or NaN/Infinity, or nested too deep
    "not_array",  # valid JSON, but not an array
    "wrong_length",  # an array of other than five elements
    "bad_field",  # join_ref/ref not string-or-null, or topic/event not a string
    "not_binary",  # binary input is not bytes
    "truncated",  # a binary header or field runs past the end of the data
    "unknown_kind",  # a binary kind byte we do not know, or one this sender cannot send
    "bad_utf8",  # a binary string field is not UTF-8
)
"""Every ``code`` a decoder's :class:`RemoteProtocolError` may carry."""


@dataclass(frozen=True, slots=True)
class Message:
    """One text frame. ``payload`` is any JSON value: the codec does not insist on an object,
    because lightning-mock sends the string ``"{}"`` as a ``work-available`` payload."""

    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: JSON


@dataclass(frozen=True, slots=True)
class BinaryPush:
    """A binary push. From the server ``ref`` is always ``""`` (its layout has no ref)."""

    join_ref: str
    ref: str
    topic: str
    event: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class BinaryReply:
    """A binary reply from the server: Phoenix JS turns it into a ``phx_reply`` whose
    ``response`` is the raw bytes. Lightning uses it for ``fetch:dataclip`` (§5.5)."""

    join_ref: str
    ref: str
    topic: str
    status: str
    response: bytes


@dataclass(frozen=True, slots=True)
class BinaryBroadcast:
    """A binary broadcast from the server: no refs at all."""

    topic: str
    event: str
    payload: bytes


BinaryFrame: TypeAlias = BinaryPush | BinaryReply | BinaryBroadcast


# -- text frames ---------------------------------------------------------------------------


def encode_text(message: Message) -> str:
    """Return the text frame for ``message``.

    Raises:
        LocalProtocolError: ``unencodable`` if the payload holds something JSON cannot carry
            (a set, a non-string key, NaN, a lone surrogate that even the fallback rejects).
    """
    frame = [message.join_ref, message.ref, message.topic, message.event, message.payload]
    try:
        return orjson.dumps(frame).decode()
    except TypeError:
        pass
    # orjson refuses integers beyond 64 bits and lone surrogates, both of which a JS peer can
    # produce and we may have to echo. The stdlib handles them; ASCII escapes keep the
    # result valid UTF-8. This path is rare, so its speed does not matter.
    try:
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(
            f"cannot encode a {message.event!r} frame for {message.topic!r}: {exc}",
            code="unencodable",
        ) from exc


def decode_text(data: str | bytes) -> Message:
    """Return the message held by one text frame.

    Raises:
        RemoteProtocolError: with a code from ``DECODE_ERRORS``.
    """
    value = _loads(data)
    if not isinstance(value, list):
        raise RemoteProtocolError("a text frame must be a JSON array", code="not_array")
    if len(value) != 5:
        raise RemoteProtocolError(
            f"a text frame must have 5 elements, not {len(value)}", code="wrong_length"
        )
    join_ref, ref, topic, event, payload = value
    return Message(
        _ref("join_ref", join_ref),
        _ref("ref", ref),
        _name("topic", topic),
        _name("event", event),
        payload,
    )


def _ref(name: str, value: JSON) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RemoteProtocolError(
            f"the frame's {name} is neither a string nor null", code="bad_field"
        )
    return value


def _name(name: str, value: JSON) -> str:
    if not isinstance(value, str):
        raise RemoteProtocolError(f"the frame's {name} is not a string", code="bad_field")
    return value


def _loads(data: str | bytes) -> JSON:
    if not isinstance(data, str | bytes):
        raise RemoteProtocolError("a text frame must be str or bytes", code="not_text")
    try:
        value: JSON = orjson.loads(data)
        return value
    except orjson.JSONDecodeError as exc:
        error: Exception = exc
    # JSON.stringify writes lone surrogates as "\udXXX" escapes, which orjson refuses; the
    # stdlib accepts them. Only retry when such an escape is present, so that garbage and
    # deep nesting are not parsed twice.
    if _may_hold_surrogate_escape(data):
        try:
            return _stdlib_loads(data)
        except (ValueError, RecursionError) as exc:
            error = exc
    raise RemoteProtocolError(
        f"a text frame is not valid JSON: {error}", code="invalid_json"
    ) from error


def _may_hold_surrogate_escape(data: str | bytes) -> bool:
    if isinstance(data, str):
        return "\\ud" in data.lower()
    return b"\\ud" in data.lower()


def _stdlib_loads(data: str | bytes) -> JSON:
    value: JSON = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    return value


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


# -- binary frames -------------------------------------------------------------------------


def encode_binary(frame: BinaryFrame, *, sender: Sender) -> bytes:
    """Return the binary frame for ``frame`` as ``sender`` lays it out.

    Raises:
        LocalProtocolError: ``wrong_sender`` if ``sender`` cannot send this kind (only the
            server replies or broadcasts, and a server push has no ref), or ``field_too_long``
            if a string field is over 255 bytes.
    """
    fields: tuple[str, ...]
    if isinstance(frame, BinaryPush):
        if sender is Sender.CLIENT:
            fields = (frame.join_ref, frame.ref, frame.topic, frame.event)
        elif frame.ref:
            raise LocalProtocolError("a server push carries no ref", code="wrong_sender")
        else:
            fields = (frame.join_ref, frame.topic, frame.event)
        return _pack(BinaryKind.PUSH, fields, frame.payload)
    if sender is Sender.CLIENT:
        raise LocalProtocolError(
            f"a client cannot send a binary {type(frame).__name__}", code="wrong_sender"
        )
    if isinstance(frame, BinaryReply):
        fields = (frame.join_ref, frame.ref, frame.topic, frame.status)
        return _pack(BinaryKind.REPLY, fields, frame.response)
    return _pack(BinaryKind.BROADCAST, (frame.topic, frame.event), frame.payload)


def _pack(kind: BinaryKind, fields: tuple[str, ...], payload: bytes) -> bytes:
    encoded = [field.encode() for field in fields]
    for raw in encoded:
        if len(raw) > 255:
            raise LocalProtocolError(
                "a binary frame's string fields are limited to 255 bytes", code="field_too_long"
            )
    header = bytes([kind, *(len(raw) for raw in encoded)])
    return b"".join([header, *encoded, payload])


def decode_binary(data: bytes, *, sender: Sender) -> BinaryFrame:
    """Return the frame held by one binary frame that ``sender`` sent.

    Raises:
        RemoteProtocolError: with a code from ``DECODE_ERRORS``.
    """
    if not isinstance(data, bytes):
        raise RemoteProtocolError("a binary frame must be bytes", code="not_binary")
    if not data:
        raise RemoteProtocolError("an empty binary frame", code="truncated")
    decoder = _DECODERS.get((data[0], sender))
    if decoder is None:
        raise RemoteProtocolError(
            f"binary frame kind {data[0]} cannot come from the {sender}", code="unknown_kind"
        )
    return decoder(data)


def _client_push(data: bytes) -> BinaryFrame:
    (join_ref, ref, topic, event), rest = _split(data, 4)
    return BinaryPush(join_ref, ref, topic, event, rest)


def _server_push(data: bytes) -> BinaryFrame:
    (join_ref, topic, event), rest = _split(data, 3)
    return BinaryPush(join_ref, "", topic, event, rest)


def _server_reply(data: bytes) -> BinaryFrame:
    (join_ref, ref, topic, status), rest = _split(data, 4)
    return BinaryReply(join_ref, ref, topic, status, rest)


def _server_broadcast(data: bytes) -> BinaryFrame:
    (topic, event), rest = _split(data, 2)
    return BinaryBroadcast(topic, event, rest)


_DECODERS: Final[dict[tuple[int, Sender], Callable[[bytes], BinaryFrame]]] = {
    (BinaryKind.PUSH, Sender.CLIENT): _client_push,
    (BinaryKind.PUSH, Sender.SERVER): _server_push,
    (BinaryKind.REPLY, Sender.SERVER): _server_reply,
    (BinaryKind.BROADCAST, Sender.SERVER): _server_broadcast,
}
"""The layouts of spec §1.2, keyed by (kind byte, sender)."""


def _split(data: bytes, count: int) -> tuple[list[str], bytes]:
    """Split off ``count`` length-prefixed UTF-8 strings; return them and the raw rest."""
    start = 1 + count
    if len(data) < start:
        raise RemoteProtocolError("a binary frame's header is cut short", code="truncated")
    fields: list[str] = []
    for size in data[1:start]:
        end = start + size
        if end > len(data):
            raise RemoteProtocolError("a binary frame's field is cut short", code="truncated")
        try:
            fields.append(data[start:end].decode())
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                "a binary frame's string field is not UTF-8", code="bad_utf8"
            ) from exc
        start = end
    return fields, data[start:]
