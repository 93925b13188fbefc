"""Length-prefixed JSON records: the framing on every sandbox socket (sans-I/O).

The worker, the zygote and each child talk over Unix sockets. Whatever the socket, a message is
one *record* (a JSON object) in one *frame*::

    +----------------------+---------------------------+
    | length: uint32, BE   | body: UTF-8 JSON object   |
    +----------------------+---------------------------+

A length prefix rather than newline-delimited JSON because a job's events may hold any string,
and because the reader then knows how much to wait for without scanning. Big-endian because
that is what ``struct`` and every other framing people read by eye use.

This module does no I/O and imports nothing that does (import-linter contract "sans-io"): the
callers own the sockets, feed the bytes they read to a :class:`FrameDecoder` and write the
bytes :func:`encode` returns. The decoder's only error is
:class:`~fulmen.errors.SandboxProtocolError` (STYLE.md P10): a peer that sends garbage is a
protocol fault the supervisor turns into a crash, never a ``KeyError`` deep in the worker.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from fulmen.errors import SandboxProtocolError

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "HEADER_BYTES", "FrameDecoder", "encode"]

HEADER_BYTES: Final = 4
"""Size of the length prefix."""

DEFAULT_MAX_FRAME_BYTES: Final = 64 * 1024 * 1024
"""Largest body a decoder accepts unless told otherwise: a run's payload or one event.

A bound is needed because the length is read before the body: without it one corrupt header
would make the worker buffer up to 4 GiB.
"""

# orjson: an order of magnitude faster than json on the hot path, and already a dependency for
# the Phoenix codec. OPT_NON_STR_KEYS keeps json.dumps' behaviour for int keys, which jobs put
# in state more often than one would hope.
_DUMPS_OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def encode(record: dict[str, Any]) -> bytes:
    """Frame one record.

    Raises:
        TypeError: ``record`` holds a value JSON cannot represent (a programming error on the
            sending side, so it is not turned into a protocol error).
    """
    body = orjson.dumps(record, option=_DUMPS_OPTIONS)
    return len(body).to_bytes(HEADER_BYTES, "big") + body


class FrameDecoder:
    """Turns a byte stream, fed in pieces of any size, back into records.

    Call :meth:`feed` with whatever the socket returned, then :meth:`close` at end of stream.
    After a :class:`SandboxProtocolError` the stream cannot be resynchronised: the decoder
    stays failed and every later call raises the same error again.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._failure: SandboxProtocolError | None = None

    @property
    def max_frame_bytes(self) -> int:
        """The largest body this decoder accepts."""
        return self._max

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add ``data`` and return every record it completes, in order.

        Raises:
            SandboxProtocolError: a frame is longer than the limit, its body is not UTF-8 JSON,
                or it is JSON but not an object.
        """
        if self._failure is not None:
            raise self._failure
        buffer = self._buffer
        buffer += data
        records: list[dict[str, Any]] = []
        start = 0
        try:
            while len(buffer) - start >= HEADER_BYTES:
                size = int.from_bytes(buffer[start : start + HEADER_BYTES], "big")
                if size > self._max:
                    raise SandboxProtocolError(
                        f"Sandbox frame of {size} bytes is over the {self._max}-byte limit."
                    )
                end = start + HEADER_BYTES + size
                if len(buffer) < end:
                    break
                records.append(self._parse(memoryview(buffer)[start + HEADER_BYTES : end]))
                start = end
        except SandboxProtocolError as exc:
            self._failure = exc
            raise
        finally:
            del buffer[:start]
        return records

    def close(self) -> None:
        """Declare end of stream.

        Raises:
            SandboxProtocolError: the stream ended inside a frame (the peer died mid-write).
        """
        if self._failure is not None:
            raise self._failure
        if self._buffer:
            self._failure = SandboxProtocolError(
                f"Sandbox stream ended inside a frame ({len(self._buffer)} bytes left over)."
            )
            raise self._failure

    @staticmethod
    def _parse(body: memoryview) -> dict[str, Any]:
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SandboxProtocolError(f"Sandbox frame is not valid JSON: {exc}.") from exc
        finally:
            body.release()
        if not isinstance(record, dict):
            raise SandboxProtocolError(
                f"Sandbox frame holds a JSON {type(record).__name__}, expected an object."
            )
        return record
