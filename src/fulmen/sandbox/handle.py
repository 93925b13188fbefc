"""One run as the worker sees it: its events as they arrive, then how it ended.

The run socket's I/O shell (STYLE.md P1): readable → :class:`~fulmen.sandbox.frames.FrameDecoder`
→ queued events; one decision, :func:`~fulmen.sandbox.outcome.classify`, at the end. The
owner (``link.py``) drives it with what the zygote reports: started, exited, failed, lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, Final, Protocol

from fulmen.errors import SandboxError, SandboxProtocolError
from fulmen.sandbox.frames import HEADER_BYTES, FrameDecoder, encode
from fulmen.sandbox.outcome import ChildExit, EndedBy, classify
from fulmen.sandbox.wire import RunHeader

__all__ = ["RunHandle"]

_HIGH_WATER: Final = 1024  # unread events before the worker stops reading a child
_LOW_WATER: Final = 256
_HIGH_WATER_BYTES: Final = 16 * 1024 * 1024
"""Bytes read since the queue was last empty before the worker stops reading a child: a
count of events alone let a job queue a thousand 60 MB events in the worker's memory."""
_OUTPUT_TAIL: Final = 4096
_RECV: Final = 1 << 16


class Owner(Protocol):
    """What a run needs from the zygote connection that started it."""

    loop: asyncio.AbstractEventLoop

    def kill(self, run_id: int) -> None:
        """Ask the zygote to SIGKILL the run's process group."""

    def release(self, run_id: int) -> None:
        """As :meth:`kill`, for a run that has concluded: no report of its exit follows."""

    def forget(self, run_id: int) -> None:
        """The run has ended; stop routing zygote reports to it."""

    def track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a clean-up task that the sandbox's close() will wait for."""


class RunHandle:
    """One run: an async iterator over the events the child emits, then its exit.

    Iterate it (``async for event in handle``) to receive events in order; when iteration
    ends, :attr:`exit` is set. :meth:`wait` returns the exit without consuming events, but
    a child that emits more than about a thousand events nobody reads is paused until they
    are read (or its timeout kills it).

    *Resource handling*: the run's socket, output, timer and directory are released by the
    time the exit is known; there is nothing to close.
    """

    def __init__(
        self,
        link: Owner,
        header: RunHeader,
        sock: socket.socket,
        output: int,
        payload_frame: bytes,
        max_frame_bytes: int,
    ) -> None:
        """Made by ``Link.start_run``, never directly."""
        self._link = link
        self._loop = link.loop
        self._header = header
        self._sock = sock
        self._output: int | None = output
        self._decoder = FrameDecoder(max_frame_bytes)
        self._events: deque[dict[str, Any]] = deque()
        self._unread_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done: asyncio.Future[ChildExit] = self._loop.create_future()
        self._error: dict[str, Any] | None = None
        self._announced: dict[str, Any] | None = None
        self._concluded = False
        self._ended_by: EndedBy | None = None
        self._detail = ""
        self._reading = False
        self._eof = False
        self._unsent: memoryview | None = memoryview(payload_frame)
        self._queued: deque[bytes] = deque()  # a duplex run's messages behind the payload
        self._input_open = True
        self._started_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.pid: int | None = None
        """The child's pid once the zygote reported it: for a duplex run, and for any run
        without namespaces (to kill its group should the zygote die first). A run whose
        child announced its end concludes without waiting for the zygote's reports, so a run
        that ended quickly may never have it."""

    @property
    def run_dir(self) -> str:
        """The child's working directory on the host (removed once the run has ended); empty
        with namespaces, where each run's directory is a tmpfs of its own."""
        return self._header.run_dir

    @property
    def exit(self) -> ChildExit:
        """How the child ended.

        Raises:
            SandboxError: the run has not ended yet.
        """
        if not self._done.done():
            raise SandboxError("The run has not ended yet; await wait() first.")
        return self._done.result()

    async def wait(self) -> ChildExit:
        """Wait for the child to end (events stay queued for iteration)."""
        return await asyncio.shield(self._done)

    def kill(self) -> None:
        """End the run's whole process group now (a cancel); its exit kind is ``killed``."""
        self._end("kill")

    def send(self, message: dict[str, Any]) -> None:
        """Queue one message for a duplex run's ``receive()``; never blocks.

        Messages arrive in order, after the payload. One sent to a run that has ended (or
        ends before reading it) is dropped: the run's exit says why it was not read.

        Raises:
            SandboxError: the run is not duplex, its input was closed, or ``message`` is not
                a JSON object within the frame limit (a programming error in the caller).
        """
        if not self._header.duplex:
            raise SandboxError("Only a duplex run takes messages; start it with duplex=True.")
        if not self._input_open:
            raise SandboxError("The run's input is closed; no message can follow.")
        if not isinstance(message, dict):
            raise SandboxError(f"A run message is a dict, not {type(message).__name__}.")
        try:
            frame = encode({"message": message})
        except TypeError as exc:
            raise SandboxError(f"Run message is not JSON-serialisable: {exc}.") from exc
        if len(frame) - HEADER_BYTES > self._decoder.max_frame_bytes:
            raise SandboxError(f"Run message of {len(frame)} bytes is over the frame limit.")
        if self._concluded or self._sock.fileno() < 0:
            return
        if self._unsent is None:
            self._unsent = memoryview(frame)
            self._flush_payload()
        else:  # a write is pending or in progress; it takes this one next
            self._queued.append(frame)

    def close_input(self) -> None:
        """End a duplex run's input: once what is queued is written, ``receive()`` returns
        ``None`` in the child. Idempotent; the run's events keep arriving."""
        if not self._input_open:
            return
        self._input_open = False
        if self._unsent is None:
            self._shut_input()

    def __aiter__(self) -> RunHandle:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._events:
            if self._done.done():
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._events.popleft()
        if not self._events:
            self._unread_bytes = 0
        if (
            not self._reading
            and len(self._events) <= _LOW_WATER
            and self._unread_bytes < _HIGH_WATER_BYTES
        ):
            self._resume_reading()
        return event

    # -- driven by the link ------------------------------------------------------------------

    def _begin(self) -> None:
        self._flush_payload()
        self._resume_reading()
        timeout = self._header.limits.timeout_s
        if timeout is not None:
            self._timer = self._loop.call_later(timeout, self._end, "timeout")

    def _on_started(self, pid: int) -> None:
        self.pid = pid

    def _on_exited(
        self,
        code: int | None,
        sig: int | None,
        max_rss_kb: int | None,
        *,
        oom: bool = False,
        cpu_s: float | None = None,
    ) -> None:
        if self._concluded:
            return
        self._concluded = True
        self._drain()
        self._close_socket()
        if self._timer is not None:
            self._timer.cancel()
        limits = self._header.limits
        kind, message = classify(
            code=code,
            signal=sig,
            error=self._error,
            ended_by=self._ended_by,
            limits=limits,
            detail=self._detail,
            oom=oom,
            cpu_s=cpu_s,
        )
        output = self._take_output(keep=kind != "ok")
        result = ChildExit(
            kind=kind,
            message=message,
            exit_code=code,
            signal=sig,
            duration_s=time.monotonic() - self._started_at,
            max_rss_kb=max_rss_kb,
            output=output,
        )
        if self.run_dir:
            try:
                os.rmdir(self.run_dir)
            except FileNotFoundError:
                pass
            except OSError:  # not empty: do the tree off the event loop
                self._link.track(self._remove_tree_then_finish(result))
                return
        self._finish(result)

    def _on_failed(self, message: str) -> None:
        """The zygote could not start the child (fork failed, spare lost)."""
        self._end_locally("zygote", message)
        self._on_exited(None, None, None)

    def _on_lost(self, detail: str) -> None:
        """The zygote died: its death killed the child (PDEATHSIG); finish its group too."""
        self._end_locally("zygote", detail)
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
        self._on_exited(None, None, None)

    # -- internals ---------------------------------------------------------------------------

    def _end(self, reason: EndedBy, detail: str = "") -> None:
        """End the run for ``reason``: the first reason wins, and the zygote kills the group."""
        if not self._concluded and self._end_locally(reason, detail):
            self._link.kill(self._header.id)

    def _end_locally(self, reason: EndedBy, detail: str) -> bool:
        if self._ended_by is not None:
            return False
        self._ended_by, self._detail = reason, detail
        return True

    def _finish(self, result: ChildExit) -> None:
        if not self._done.done():
            self._done.set_result(result)
        self._link.forget(self._header.id)
        self._wake()

    async def _remove_tree_then_finish(self, result: ChildExit) -> None:
        try:
            await self._loop.run_in_executor(None, shutil.rmtree, self.run_dir, True)
        finally:
            self._finish(result)

    def _take_output(self, keep: bool) -> str:
        """The tail of what the child wrote to its stdout and stderr, if ``keep``; closes
        the output."""
        output, self._output = self._output, None
        if output is None:
            return ""
        try:
            if not keep:
                return ""
            size = os.fstat(output).st_size
            return os.pread(output, _OUTPUT_TAIL, max(0, size - _OUTPUT_TAIL)).decode(
                errors="replace"
            )
        finally:
            os.close(output)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume_reading(self) -> None:
        if self._sock.fileno() >= 0 and not self._eof and not self._reading:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _on_readable(self) -> None:
        # One read per callback: other runs get their turn, and the queue is checked between
        # reads, so a child faster than its reader is paused (it then blocks in emit).
        self._read_once()
        if len(self._events) >= _HIGH_WATER or self._unread_bytes >= _HIGH_WATER_BYTES:
            self._pause_reading()

    def _drain(self) -> None:
        """Read whatever the (now dead) child left in the socket, queue or no queue."""
        while self._sock.fileno() >= 0 and self._read_once():
            pass

    def _read_once(self) -> bool:
        """Read and decode one chunk; False when nothing more can be read now."""
        if self._eof:
            return False
        try:
            data = self._sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        self._unread_bytes += len(data)
        if not data:
            self._eof = True
            self._pause_reading()
            return False
        try:
            records = self._decoder.feed(data)
        except SandboxProtocolError as exc:
            self._protocol_error(str(exc))
            return False
        for record in records:
            self._accept(record)
        if self._announced is not None and not self._eof and not self._concluded:
            self._conclude_announced(self._announced)
            return False
        return True

    def _accept(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if isinstance(event, dict):
            self._events.append(event)
            self._wake()
        elif isinstance(record.get("error"), dict) and self._error is None:
            self._error = record["error"]
        elif isinstance(record.get("exit"), int) and self._announced is None:
            self._announced = record
        else:
            self._protocol_error(f"unexpected record with keys {sorted(record)}")

    def _conclude_announced(self, record: dict[str, Any]) -> None:
        """The child said how it ends: the run is over now.

        Waiting for the zygote's report would add the kernel's teardown of the process
        (about a millisecond) to every run. The report is not needed to trust the code: the
        job could make its entry return anyway. What it must not do is announce an end and
        keep running, so the group is killed now (a no-op for a child already exiting); the
        zygote is told not to report the exit, which nothing here waits for any more.

        The ``exit`` record is the last of the stream (``wire.py``): nothing after it is
        read, not even the end of stream that follows it, which would only wake this
        process once more per run.
        """
        self._eof = True
        self._pause_reading()
        self._link.release(self._header.id)
        maxrss = record.get("maxrss")
        self._on_exited(int(record["exit"]), None, maxrss if isinstance(maxrss, int) else None)

    def _protocol_error(self, detail: str) -> None:
        self._eof = True
        self._pause_reading()
        self._end("protocol", detail)

    def _flush_payload(self) -> None:
        """Write the payload, then any queued messages, as far as the socket takes them."""
        data = self._unsent
        while data is not None:
            try:
                data = data[self._sock.send(data) :]
            except (BlockingIOError, InterruptedError):
                self._unsent = data
                self._loop.add_writer(self._sock.fileno(), self._on_writable)
                return
            except OSError:  # the child died before reading it all; its exit will say why
                self._queued.clear()
                break
            if not len(data):
                data = memoryview(self._queued.popleft()) if self._queued else None
        self._unsent = None
        if not self._input_open:
            self._shut_input()

    def _shut_input(self) -> None:
        if self._sock.fileno() >= 0:
            with contextlib.suppress(OSError):  # the child is gone; its exit says why
                self._sock.shutdown(socket.SHUT_WR)

    def _on_writable(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self._flush_payload()

    def _close_socket(self) -> None:
        if self._sock.fileno() >= 0:
            self._pause_reading()
            if self._unsent is not None:
                self._loop.remove_writer(self._sock.fileno())
                self._unsent = None
            self._queued.clear()
            self._sock.close()
