"""The worker's connection to one zygote process: the control socket's I/O shell.

Sends run headers (with the run socket and the output memfd attached by ``SCM_RIGHTS``),
kills and releases; routes the zygote's reports to the runs they are about. When the zygote
dies, every run in flight ends as a crash and the link is dead for good: ``process.Zygote``
starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from array import array
from collections import deque
from collections.abc import Coroutine
from typing import Any, Final

from fulmen.errors import SandboxError, SandboxProtocolError
from fulmen.sandbox.frames import FrameDecoder, encode
from fulmen.sandbox.handle import RunHandle
from fulmen.sandbox.wire import RunHeader

__all__ = ["Link"]

log = logging.getLogger(__name__)

_RECV: Final = 1 << 16


class Link:
    """One zygote process and the control socket to it; replaced when the zygote dies."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        process: asyncio.subprocess.Process,
        control: socket.socket,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.loop = loop
        self.process = process
        self.control = control
        self.alive = True
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.runs: dict[int, RunHandle] = {}
        self._tasks = tasks
        self._decoder = FrameDecoder()
        self._outbox: deque[tuple[bytes, tuple[socket.socket, int] | None]] = deque()
        control.setblocking(False)
        loop.add_reader(control.fileno(), self._on_readable)

    def start_run(self, header: RunHeader, payload_frame: bytes, max_frame_bytes: int) -> RunHandle:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        # The child's stdout and stderr: a memfd rather than a file the zygote creates on the
        # host's disk for each run (an inode made, journalled and unlinked per run). O_APPEND
        # as the file had, so that every process of the run appends.
        output = os.memfd_create("fulmen-run-output", os.MFD_CLOEXEC)
        fcntl.fcntl(output, fcntl.F_SETFL, os.O_APPEND)
        handle = RunHandle(self, header, ours, output, payload_frame, max_frame_bytes)
        self.runs[header.id] = handle
        handle._begin()
        self._send(encode(header.to_record()), (theirs, output))
        return handle

    def kill(self, run_id: int) -> None:
        if self.alive:
            self._send(encode({"t": "kill", "id": run_id}))

    def release(self, run_id: int) -> None:
        """Kill the run's group, as :meth:`kill`, for a run whose handle has concluded: the
        zygote then does not report its exit (it would only wake this process)."""
        if self.alive:
            self._send(encode({"t": "release", "id": run_id}))

    def forget(self, run_id: int) -> None:
        self.runs.pop(run_id, None)

    def track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close the control socket (the zygote then kills its children and exits)."""
        self._shut("closed")
        try:
            async with asyncio.timeout(timeout_s):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    # -- internals ---------------------------------------------------------------------------

    def _send(self, data: bytes, attached: tuple[socket.socket, int] | None = None) -> None:
        """Queue ``data``; ``attached`` is a run's socket end, closed once sent, and its
        output, which its handle keeps."""
        self._outbox.append((data, attached))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        while self._outbox and self.alive:
            data, attached = self._outbox[0]
            ancillary = []
            if attached is not None:  # SCM_RIGHTS: the kernel installs copies in the zygote
                fds = array("i", [attached[0].fileno(), attached[1]])
                ancillary.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, fds))
            try:
                self.control.sendmsg([data], ancillary)
            except (BlockingIOError, InterruptedError):
                self.loop.add_writer(self.control.fileno(), self._on_writable)
                return
            except OSError as exc:
                self._lost(f"control socket: {exc}")
                return
            self._outbox.popleft()
            if attached is not None:
                attached[0].close()  # the zygote has its own copy now

    def _on_writable(self) -> None:
        self.loop.remove_writer(self.control.fileno())
        self._flush()

    def _on_readable(self) -> None:
        while self.alive:
            try:
                data = self.control.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(f"control socket: {exc}")
                return
            if not data:
                self._lost("it closed its control socket")
                return
            try:
                for record in self._decoder.feed(data):
                    self._dispatch(record)
            except (SandboxProtocolError, KeyError, TypeError, ValueError) as exc:
                self._lost(f"bad control message: {exc}")
                return

    def _dispatch(self, record: dict[str, Any]) -> None:
        kind = record["t"]
        if kind == "ready":
            if not self.ready.done():
                self.ready.set_result(record)
            return
        handle = self.runs.get(int(record["id"]))
        if handle is None:
            return
        if kind == "started":
            handle._on_started(int(record["pid"]))
        elif kind == "exited":
            handle._on_exited(
                record.get("code"),
                record.get("signal"),
                record.get("maxrss"),
                oom=bool(record.get("oom")),
                cpu_s=record.get("cpu"),
            )
        elif kind == "failed":
            handle._on_failed(str(record["message"]))

    def _lost(self, detail: str) -> None:
        if not self.alive:
            return
        log.warning("sandbox zygote %s lost: %s", self.process.pid, detail)
        self._shut(detail)
        self.track(self._reap())

    def _shut(self, detail: str) -> None:
        """Stop talking to the zygote; fail every run still in flight."""
        if self.alive:
            self.alive = False
            self.loop.remove_reader(self.control.fileno())
            self.loop.remove_writer(self.control.fileno())
            self.control.close()
        while self._outbox:
            _, attached = self._outbox.popleft()
            if attached is not None:
                attached[0].close()
        if not self.ready.done():
            self.ready.set_exception(SandboxError(f"The sandbox zygote exited: {detail}."))
        for handle in list(self.runs.values()):
            handle._on_lost(detail)

    async def _reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
