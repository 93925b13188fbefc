"""The worker's WebSocket pump, against websockets' own sans-I/O server over an in-memory
transport: no sockets, so each test sees exactly which bytes went out in which write."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from fulmen.worker.websocket import COMPRESSION_THRESHOLD, WebSocket, _extensions

URL = "ws://coordinator.test:4000/worker/websocket?vsn=2.0.0"


def in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test body in a fresh event loop (the WebSocket needs a running one)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


class Wire(asyncio.Transport):
    """A transport that records each write; closing it tells the protocol at once."""

    def __init__(self, protocol: WebSocket) -> None:
        super().__init__()
        self.protocol = protocol
        self.writes: list[bytes] = []
        self.eof = False
        self.closed = False
        self.on_write: Callable[[], None] | None = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        if self.on_write is not None:
            self.on_write()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.protocol.connection_lost(None)


class Pair:
    """A client :class:`WebSocket` and a websockets server, joined by a :class:`Wire`."""

    def __init__(self, *, deflate: bool = True, address: str = "192.0.2.7") -> None:
        extensions = _extensions(address)
        client = ClientProtocol(parse_uri(URL), extensions=extensions, max_size=2**20)
        self.client = WebSocket(client)
        self.wire = Wire(self.client)
        factories = [ServerPerMessageDeflateFactory()] if deflate else None
        self.server = ServerProtocol(extensions=factories)
        self.received: list[str | bytes] = []
        self.seen = 0  # client writes the server has read

    def open(self) -> None:
        self.client.connection_made(self.wire)
        request = self.to_server()[0]
        assert isinstance(request, Request)
        self.server.send_response(self.server.accept(request))
        self.to_client()
        assert self.client.opened.done() and self.client.opened.exception() is None

    def to_server(self) -> list[Any]:
        """Feed the client's new writes to the server; return the server's events."""
        for data in self.wire.writes[self.seen :]:
            self.server.receive_data(data)
        self.seen = len(self.wire.writes)
        return self.server.events_received()

    def answer_a_close(self) -> None:
        """From now on, behave as a server does when the client closes: answer its close
        frame, then close the TCP connection."""

        def on_write() -> None:
            self.to_server()
            if self.server.close_rcvd is not None:
                self.to_client()
                asyncio.get_running_loop().call_soon(self.wire.abort)

        self.wire.on_write = on_write

    def to_client(self) -> None:
        for data in self.server.data_to_send():
            if data:
                view = self.client.get_buffer(len(data))
                view[: len(data)] = data
                self.client.buffer_updated(len(data))


def raw_frames(data: bytes) -> list[int]:
    """The first header byte of each client frame in one write (FIN, RSV1-3, opcode)."""
    firsts, i = [], 0
    while i < len(data):
        firsts.append(data[i])
        size, i = data[i + 1] & 0x7F, i + 2
        if size == 126:
            size, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif size == 127:
            size, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        i += 4 + size  # the mask, then the payload
    return firsts


@in_loop
async def test_the_handshake_is_the_one_websockets_connect_makes() -> None:
    pair = Pair()
    pair.client.connection_made(pair.wire)
    request = pair.to_server()[0]
    assert request.path == "/worker/websocket?vsn=2.0.0"
    assert request.headers["Host"] == "coordinator.test:4000"
    assert request.headers["User-Agent"].startswith("Python/")
    assert request.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")


@in_loop
async def test_frames_written_together_leave_in_one_write_each_as_its_own_message() -> None:
    pair = Pair()
    pair.open()
    before = len(pair.wire.writes)
    pair.client.send_texts(['[null,"1","phoenix","heartbeat",{}]', '["2","2","t","e",{}]'])
    assert len(pair.wire.writes) == before + 1
    messages = [frame.data for frame in pair.to_server() if isinstance(frame, Frame)]
    assert messages == [b'[null,"1","phoenix","heartbeat",{}]', b'["2","2","t","e",{}]']


@in_loop
async def test_only_messages_past_the_threshold_are_compressed() -> None:
    pair = Pair()
    pair.open()
    small, large = "x" * (COMPRESSION_THRESHOLD - 1), "y" * COMPRESSION_THRESHOLD
    pair.client.send_texts([small, large])
    assert raw_frames(pair.wire.writes[-1]) == [0x81, 0xC1]  # text+FIN; text+FIN+RSV1
    messages = [frame.data for frame in pair.to_server() if isinstance(frame, Frame)]
    assert messages == [small.encode(), large.encode()]


@in_loop
async def test_without_deflate_nothing_is_compressed() -> None:
    pair = Pair(deflate=False)
    pair.open()
    pair.client.send_texts(["y" * 5000])
    assert raw_frames(pair.wire.writes[-1]) == [0x81]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1"])
def test_deflate_is_not_offered_to_a_loopback_address(address: str) -> None:
    async def body() -> None:
        pair = Pair(address=address)
        pair.client.connection_made(pair.wire)
        request = pair.to_server()[0]
        assert "Sec-WebSocket-Extensions" not in request.headers

    asyncio.run(body())


@in_loop
async def test_messages_wait_for_a_handler_then_arrive_in_order() -> None:
    pair = Pair()
    pair.open()
    pair.server.send_text(b"first")
    pair.server.send_binary(b"\x01second")
    pair.to_client()
    pair.client.attach(pair.received.append)
    pair.server.send_text("thïrd".encode())
    pair.to_client()
    assert pair.received == ["first", b"\x01second", "thïrd"]


@in_loop
async def test_a_fragmented_message_is_delivered_whole() -> None:
    pair = Pair()
    pair.open()
    pair.client.attach(pair.received.append)
    pair.server.send_text(b'["1",', fin=False)
    pair.server.send_continuation(b'"2"', fin=False)
    pair.server.send_continuation(b"]", fin=True)
    pair.to_client()
    assert pair.received == ['["1","2"]']


@in_loop
async def test_bad_utf8_in_text_fails_the_connection_with_1007() -> None:
    pair = Pair()
    pair.open()
    pair.client.attach(pair.received.append)
    pair.server.send_text(b"\xff\xfe")
    pair.to_client()
    assert pair.received == []
    pair.to_server()
    assert pair.server.close_rcvd is not None
    assert pair.server.close_rcvd.code == CloseCode.INVALID_DATA


@in_loop
async def test_a_server_close_is_answered_and_ends_the_connection() -> None:
    pair = Pair()
    pair.open()
    pair.server.send_close(CloseCode.GOING_AWAY)
    pair.to_client()
    pair.to_server()
    assert pair.server.state is State.CLOSED or pair.server.close_sent is not None
    assert not pair.client.closed.done()  # the server closes the TCP connection
    pair.wire.abort()
    assert pair.client.closed.done()


@in_loop
async def test_close_sends_1000_then_waits_for_the_tcp_close() -> None:
    pair = Pair()
    pair.open()
    pair.answer_a_close()
    await pair.client.close()
    assert pair.server.close_rcvd is not None
    assert pair.server.close_rcvd.code == CloseCode.NORMAL_CLOSURE
    assert pair.client.closed.done()


@in_loop
async def test_a_close_the_server_never_answers_is_aborted_after_the_timeout() -> None:
    """A stopping worker waits for the server's TCP close only as long as it is told."""
    pair = Pair()
    pair.open()
    await pair.client.close(timeout=0.01)  # the server reads nothing and closes nothing
    assert pair.wire.closed and pair.client.closed.done()
    pair.to_server()
    assert pair.server.close_rcvd is not None  # the close frame went out first


@in_loop
async def test_frames_sent_while_closing_are_dropped() -> None:
    pair = Pair()
    pair.open()
    pair.server.send_close(CloseCode.GOING_AWAY)
    pair.to_client()
    writes = len(pair.wire.writes)
    pair.client.send_texts(["late"])
    assert len(pair.wire.writes) == writes


@in_loop
async def test_a_refused_upgrade_fails_the_opening() -> None:
    pair = Pair()
    pair.client.connection_made(pair.wire)
    pair.to_server()
    pair.server.send_response(pair.server.reject(401, "Unauthorized\n"))
    pair.to_client()
    failure = pair.client.opened.exception()
    assert failure is not None and "401" in str(failure)
    assert pair.wire.closed
