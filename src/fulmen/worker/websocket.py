"""The worker's WebSocket: websockets' sans-I/O ``ClientProtocol`` in an asyncio
``BufferedProtocol`` (STYLE.md P1, the pump of websockets' own ``asyncio/connection.py``).

Why not ``websockets.asyncio.client``: it serves an application that awaits one message at a
time, and the worker does not. Its connection reacts to each frame at once and writes whatever
its Phoenix session has queued, so that layer's extra steps cost more CPU per run than the
rest of the connection (measured with ``bench/e2e.py``): each send entered an async context
manager and made its own ``send`` system call, each message went through a queue and a task
switch before anyone saw it, and each read allocated a 256 KiB buffer that the kernel mapped
and unmapped. Here:

* frames are handed to ``on_message`` as soon as they are parsed, in the read callback;
* frames written during one pass of the event loop leave in one ``write`` at its end, so
  replies to several runs' events, answered in the same pass, share a system call;
* reads land in one buffer allocated with the socket.

Compression (RFC 7692): to a remote coordinator, permessage-deflate is offered, as ws-worker's
``ws`` client offers it and as Lightning accepts it (spec §1.1), and, like ``ws``, only
messages of at least :data:`COMPRESSION_THRESHOLD` bytes are compressed: deflating a
100-byte frame costs more than it saves, and most of a run's frames are that small (the RFC
lets a sender leave any message uncompressed; a 10 MB dataclip still goes compressed). To a
coordinator on a loopback address it is not offered at all: bandwidth costs nothing there,
while compressing and inflating every frame cost both sides CPU on every event of every run.

The opening handshake is the one ``websockets.asyncio.client.connect`` makes (same headers,
including its ``User-Agent``), without following redirects, which ws-worker does not do
either. At ``DEBUG`` websockets logs (on ``websockets.client``) the request line, whose query
is the worker token (§1.7), and every frame, among them run tokens and credentials: what
it logs here shows neither (:class:`_ProtocolLog`), whatever level that logger is set to.

Closing follows websockets' rules: after our close frame, or the server's, wait up to
:data:`CLOSE_TIMEOUT` (or what :meth:`WebSocket.close` is given) for the server to close the
TCP connection, then abort it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import State
from websockets.typing import BytesLike, ExtensionParameter
from websockets.uri import parse_uri

__all__ = [
    "CLOSE_TIMEOUT",
    "COMPRESSION_THRESHOLD",
    "MessageHandler",
    "WebSocket",
    "connect",
]

COMPRESSION_THRESHOLD: Final = 1024
"""Smallest message we compress, in bytes: the default of the ``ws`` library ws-worker uses."""
CLOSE_TIMEOUT: Final = 10.0
"""How long a closing connection waits for the server's TCP close (websockets' default)."""
_READ_BUFFER_BYTES: Final = 256 * 1024

MessageHandler = Callable[[str | bytes], None]
"""Called with each whole message: a text message as ``str``, a binary one as ``bytes``."""


class _ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """``websockets.client``, as websockets would log to it, minus tokens: a string's query
    (the request line's ``?token=…``) is cut, and a frame is shown by its kind and size."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            self.logger.log(level, msg, *(_unshown(arg) for arg in args), **kwargs)


def _unshown(arg: object) -> object:
    if isinstance(arg, Frame):
        return f"{arg.opcode.name} [{len(arg.data)} bytes]"
    if isinstance(arg, str) and "?" in arg:
        return arg.split("?", 1)[0] + "?[redacted]"
    return arg


_PROTOCOL_LOG: Final = _ProtocolLog(logging.getLogger("websockets.client"))


class _ThresholdDeflate(PerMessageDeflate):
    """permessage-deflate that sends messages under the threshold uncompressed (RFC 7692
    §6.1 allows it; the compressor's history is untouched, so context takeover still holds)."""

    def encode(self, frame: Frame) -> Frame:
        if (
            frame.fin
            and frame.opcode is not Opcode.CONT
            and len(frame.data) < COMPRESSION_THRESHOLD
        ):
            return frame
        return super().encode(frame)


class _ThresholdDeflateFactory(ClientPerMessageDeflateFactory):
    """Offers permessage-deflate as websockets' ``connect`` does; negotiates a
    :class:`_ThresholdDeflate`."""

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        agreed = super().process_response_params(params, accepted_extensions)
        return _ThresholdDeflate(
            agreed.remote_no_context_takeover,
            agreed.local_no_context_takeover,
            agreed.remote_max_window_bits,
            agreed.local_max_window_bits,
            agreed.compress_settings,
        )


def _extensions(host: str) -> list[_ThresholdDeflateFactory] | None:
    """What to offer when connecting to the address ``host``: see the module docstring."""
    if ipaddress.ip_address(host).is_loopback:
        return None
    # websockets' connect(compression="deflate") offers exactly this (memLevel 5 saves memory).
    return [_ThresholdDeflateFactory(compress_settings={"memLevel": 5})]


async def connect(
    url: str, *, host: str, port: int, max_size: int, server_hostname: str | None = None
) -> WebSocket:
    """Open a WebSocket to ``url`` at the IP address ``host``; return it once the handshake
    is done. Bound it with ``asyncio.timeout``: a cancelled opening aborts the connection.

    Raises:
        OSError: the TCP (or TLS) connection failed.
        InvalidStatus: the server answered the upgrade with another status than 101.
        InvalidHandshake: any other failed handshake (``InvalidMessage`` if the server closed
            the connection without a valid HTTP response).
    """
    uri = parse_uri(url)
    protocol = ClientProtocol(
        uri, extensions=_extensions(host), max_size=max_size, logger=_PROTOCOL_LOG
    )
    socket = WebSocket(protocol)
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None
    await loop.create_connection(
        lambda: socket,
        host,
        port,
        ssl=context,
        server_hostname=(server_hostname or uri.host) if context is not None else None,
    )
    try:
        await socket.opened
    except BaseException:
        socket.abort()
        raise
    return socket


class WebSocket(asyncio.BufferedProtocol):
    """One client WebSocket; see the module docstring. Made by :func:`connect`.

    Use: :meth:`attach` a message handler (messages that came before it wait for it),
    :meth:`send_texts` frames, await :attr:`closed` to learn that the connection is gone, and
    :meth:`close` it.

    *Error handling*: nothing here raises for network trouble once open. A protocol error by
    the server fails the connection as websockets does (close frame with the RFC's code, then
    TCP close); the server's bad UTF-8 in a text message fails it with 1007.
    """

    def __init__(self, protocol: ClientProtocol) -> None:
        """Use :func:`connect`."""
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray(_READ_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._handler: MessageHandler | None = None
        self._early: list[str | bytes] = []  # messages before attach()
        self._fragments: list[BytesLike] = []
        self._fragmented_binary = False
        self._close_timer: asyncio.TimerHandle | None = None
        self.opened: asyncio.Future[None] = self._loop.create_future()
        """Done when the handshake succeeds; its exception says why it failed."""
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Done when the TCP connection is gone."""

    # -- the application's side ----------------------------------------------------------

    def attach(self, handler: MessageHandler) -> None:
        """Hand every message, from now on and any that already arrived, to ``handler``."""
        self._handler = handler
        early, self._early = self._early, []
        for message in early:
            handler(message)

    def send_texts(self, frames: list[str]) -> None:
        """Send each of ``frames`` as a text message, all in one write. Frames sent while the
        connection is closing or closed are dropped: the session has written them off."""
        if self._protocol.state is not State.OPEN:
            return
        for frame in frames:
            self._protocol.send_text(frame.encode())
        self._write_out()

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close with code 1000 and wait for the server's TCP close, at most ``timeout``
        seconds (after which the connection is aborted). Waiting lets the server read what
        we sent before the connection goes: a socket closed with unread data resets it."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(CloseCode.NORMAL_CLOSURE)
            self._write_out()
        if self.closed.done():
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.closed)
        except TimeoutError:
            if self._transport is None:
                return  # never connected: nothing to wait for
            self.abort()  # connection_lost follows in this pass of the loop
            await asyncio.shield(self.closed)

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio's side ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        request = self._protocol.connect()
        request.headers.setdefault("User-Agent", USER_AGENT)
        self._protocol.send_request(request)
        self._write_out()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._protocol.receive_data(bytes(self._view[:nbytes]))
        self._after_receive()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._after_receive()  # returning None closes the transport, as TCP close should

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()  # idempotent; the protocol ends up CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self.opened.done():
            failure = self._protocol.handshake_exc
            if failure is None:
                failure = InvalidMessage("the connection closed during the handshake")
                failure.__cause__ = exc
            self.opened.set_exception(failure)
            self.opened.exception()  # retrieved: connect() may already have given up
        if not self.closed.done():
            self.closed.set_result(None)

    # -- internals -----------------------------------------------------------------------

    def _after_receive(self) -> None:
        """websockets' pump: write what the protocol answered, arm the close timer if it
        expects the TCP close, then act on the events."""
        events = self._protocol.events_received()
        self._write_out()
        if self._protocol.close_expected():
            self._arm_close_timer()
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)
            elif not self.opened.done():  # the handshake response
                self._on_handshake()

    def _on_handshake(self) -> None:
        failure = self._protocol.handshake_exc
        if failure is None:
            self.opened.set_result(None)
        else:
            self.opened.set_exception(failure)
            self.abort()

    def _on_frame(self, frame: Frame) -> None:
        """Reassemble messages; control frames are the protocol's business (it answers pings
        and close frames itself)."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(frame.data, opcode is Opcode.BINARY)
            else:
                self._fragments = [frame.data]
                self._fragmented_binary = opcode is Opcode.BINARY
        elif opcode is Opcode.CONT:
            self._fragments.append(frame.data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(data, self._fragmented_binary)

    def _deliver(self, data: BytesLike, binary: bool) -> None:
        message = bytes(data)  # no copy: parsed frames already hold bytes
        if not binary:
            try:
                text = message.decode()
            except UnicodeDecodeError:
                self._protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                self._write_out()
                self._arm_close_timer()
                return
        delivered: str | bytes = message if binary else text
        if self._handler is None:
            self._early.append(delivered)
        else:
            self._handler(delivered)

    def _write_out(self) -> None:
        chunks = self._protocol.data_to_send()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        data = b"".join(chunks)
        if data:
            transport.write(data)
        if chunks and not chunks[-1]:  # websockets' SEND_EOF: half-close, or close under TLS
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self.closed.done():
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.abort)
