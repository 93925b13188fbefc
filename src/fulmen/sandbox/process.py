"""The worker's side of the sandbox: start a zygote, run entries in it, stream their events.

All of this runs in the worker's event loop and never forks it: forking a threaded asyncio
process is unsafe, and the worker's memory holds secrets (stack-research §3.4). Instead one
zygote process, started once with a scrubbed environment, forks every run
(``fulmen.sandbox.zygote``).

Per run, the worker makes a socketpair, writes the payload (credentials included) into its own
end, and passes the other end to the zygote with a non-secret header. The zygote hands it to a
pre-forked child; the payload is read by that child alone (``wire.py`` has the messages).
Events come back on the same socket, ended by the child's ``exit`` record; when a child dies
without one, the exit status the zygote reaps decides.

*Error handling*: nothing a child does raises here. Timeouts, kills, crashes, bad frames and
a dying zygote all end the run with a :class:`~fulmen.sandbox.outcome.ChildExit`; the next
:meth:`Zygote.run` after a zygote died starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import fulmen
from fulmen.errors import SandboxError, SandboxProtocolError
from fulmen.sandbox.frames import DEFAULT_MAX_FRAME_BYTES, HEADER_BYTES, FrameDecoder, encode
from fulmen.sandbox.isolation import ZYGOTE_ENVIRONMENT, IsolationReport, Policy, assess
from fulmen.sandbox.limits import Limits, planned_rlimits
from fulmen.sandbox.outcome import ChildExit, EndedBy, classify
from fulmen.sandbox.wire import RunHeader

__all__ = ["DEFAULT_PRELOAD", "LEVELS", "RunHandle", "Zygote"]

log = logging.getLogger("fulmen.sandbox")

DEFAULT_PRELOAD: Final = ("json", "logging", "datetime", "decimal", "re")
LEVELS: Final = ("none", "L0", "L1")
"""Isolation levels, weakest first."""

_ENTRY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_BOOTSTRAP: Final = """\
import json, sys
config = json.loads(sys.argv[1])
sys.path[:0] = [p for p in config["fulmen_path"] if p not in sys.path]
sys.path.extend(p for p in config["extra_sys_path"] if p not in sys.path)
from fulmen.sandbox.zygote import main
main(config)
"""
_HIGH_WATER: Final = 1024  # unread events before the worker stops reading a child
_LOW_WATER: Final = 256
_OUTPUT_TAIL: Final = 4096
_RECV: Final = 1 << 16
_PROBE_LIMITS: Final = Limits(
    timeout_s=20, memory_mb=256, cpu_s=20, nofile=64, nproc=64, fsize_mb=8
)


class RunHandle:
    """One run: an async iterator over the events the child emits, then its exit.

    Iterate it (``async for event in handle``) to receive events in order; when iteration
    ends, :attr:`exit` is set. :meth:`wait` returns the exit without consuming events, but
    a child that emits more than about a thousand events nobody reads is paused until they
    are read (or its timeout kills it).

    *Resource handling*: the run's socket, timer and directory are released by the time the
    exit is known; there is nothing to close.
    """

    def __init__(
        self,
        link: _Link,
        header: RunHeader,
        sock: socket.socket,
        payload_frame: bytes,
        max_frame_bytes: int,
    ) -> None:
        self._link = link
        self._loop = link.loop
        self._header = header
        self._sock = sock
        self._decoder = FrameDecoder(max_frame_bytes)
        self._events: deque[dict[str, Any]] = deque()
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
        self._started_at = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.pid: int | None = None
        """The child's pid once the zygote reported it (diagnostics only)."""

    @property
    def run_dir(self) -> str:
        """The child's working directory (removed once the run has ended)."""
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
        if not self._reading and len(self._events) <= _LOW_WATER:
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

    def _on_exited(self, code: int | None, sig: int | None, max_rss_kb: int | None) -> None:
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
        path = self._header.output_path
        text = ""
        try:
            if keep:
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - _OUTPUT_TAIL))
                    text = f.read().decode(errors="replace")
            os.unlink(path)
        except FileNotFoundError:
            pass
        return text

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
        if len(self._events) >= _HIGH_WATER:
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
        if not data:
            self._eof = True
            self._pause_reading()
            if self._announced is not None:
                self._conclude_announced(self._announced)
            return False
        try:
            records = self._decoder.feed(data)
        except SandboxProtocolError as exc:
            self._protocol_error(str(exc))
            return False
        for record in records:
            self._accept(record)
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
        """The child said how it ends and shut its socket: the run is over now.

        Waiting for the zygote's report would add the kernel's teardown of the process
        (about a millisecond) to every run. The report is not needed to trust the code: the
        job could make its entry return anyway. What it must not do is announce an end and
        keep running, so the group is killed now (a no-op for a child already exiting).
        """
        self._link.kill(self._header.id)
        maxrss = record.get("maxrss")
        self._on_exited(int(record["exit"]), None, maxrss if isinstance(maxrss, int) else None)

    def _protocol_error(self, detail: str) -> None:
        self._eof = True
        self._pause_reading()
        self._end("protocol", detail)

    def _flush_payload(self) -> None:
        data = self._unsent
        while data is not None and len(data):
            try:
                data = data[self._sock.send(data) :]
            except (BlockingIOError, InterruptedError):
                self._unsent = data
                self._loop.add_writer(self._sock.fileno(), self._on_writable)
                return
            except OSError:  # the child died before reading it all; its exit will say why
                break
        self._unsent = None

    def _on_writable(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self._flush_payload()

    def _close_socket(self) -> None:
        if self._sock.fileno() >= 0:
            self._pause_reading()
            if self._unsent is not None:
                self._loop.remove_writer(self._sock.fileno())
                self._unsent = None
            self._sock.close()


class _Link:
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
        self._outbox: deque[tuple[bytes, socket.socket | None]] = deque()
        control.setblocking(False)
        loop.add_reader(control.fileno(), self._on_readable)

    def start_run(self, header: RunHeader, payload_frame: bytes, max_frame_bytes: int) -> RunHandle:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        handle = RunHandle(self, header, ours, payload_frame, max_frame_bytes)
        self.runs[header.id] = handle
        handle._begin()
        self._send(encode(header.to_record()), theirs)
        return handle

    def kill(self, run_id: int) -> None:
        if self.alive:
            self._send(encode({"t": "kill", "id": run_id}))

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

    def _send(self, data: bytes, attached: socket.socket | None = None) -> None:
        self._outbox.append((data, attached))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        while self._outbox and self.alive:
            data, attached = self._outbox[0]
            ancillary = []
            if attached is not None:  # SCM_RIGHTS: the kernel installs a copy in the zygote
                fds = array("i", [attached.fileno()])
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
                attached.close()  # the zygote has its own copy now

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
            handle._on_exited(record.get("code"), record.get("signal"), record.get("maxrss"))
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
                attached.close()
        if not self.ready.done():
            self.ready.set_exception(SandboxError(f"The sandbox zygote exited: {detail}."))
        for handle in list(self.runs.values()):
            handle._on_lost(detail)

    async def _reap(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


class Zygote:
    """A preloaded, secret-free interpreter that forks one sandboxed child per run.

    Start with ``await Zygote.start(...)``; use as ``async with`` or call :meth:`close`.
    :attr:`isolation` says what each child gets on this host, verified at start.

    *Resource handling*: owns the zygote process, a base directory holding one directory per
    run, and the tasks that clean them; :meth:`close` kills live runs and releases all.
    """

    def __init__(
        self,
        *,
        preload: Sequence[str],
        extra_sys_path: Sequence[str],
        python: str,
        base_dir: str | None,
        unprivileged_uid: int,
        use_landlock: bool,
        max_frame_bytes: int,
        start_timeout_s: float,
    ) -> None:
        """Use :meth:`start`; this only records settings."""
        self._use_landlock = use_landlock
        self._preload = list(preload)
        self._extra_sys_path = [os.path.abspath(p) for p in extra_sys_path]
        self._python = python
        self._own_base = base_dir is None
        self._base = base_dir or tempfile.mkdtemp(prefix="fulmen-sandbox-")
        self._uid = unprivileged_uid
        self._max_frame = max_frame_bytes
        self._start_timeout = start_timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._link: _Link | None = None
        self._restart_lock = asyncio.Lock()
        self._next_id = 0
        self._closed = False
        self._isolation: IsolationReport | None = None
        self.preload_errors: Mapping[str, str] = {}
        """Modules that failed to preload, with the error; the zygote runs without them."""

    @classmethod
    async def start(
        cls,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        extra_sys_path: Sequence[str] = (),
        *,
        python: str | None = None,
        base_dir: str | None = None,
        unprivileged_uid: int = 65534,
        use_landlock: bool = True,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        minimum_level: str | None = None,
        start_timeout_s: float = 30.0,
    ) -> Zygote:
        """Start a zygote, probe the isolation it gives, and return it ready to run.

        Args:
            preload: modules to import once in the zygote (names that fail are reported in
                :attr:`preload_errors`).
            extra_sys_path: directories appended to the zygote's ``sys.path`` (and readable
                by children).
            python: the interpreter to use; the worker's own by default.
            base_dir: where run directories are made; a fresh temporary one by default.
            unprivileged_uid: the uid children switch to when the worker is root and this
                uid can read the interpreter.
            use_landlock: apply Landlock where the kernel offers it (turn off only to
                diagnose a job that Landlock breaks; the report then says so).
            max_frame_bytes: largest payload or event accepted.
            minimum_level: refuse to start below this isolation level (see ``LEVELS``).
            start_timeout_s: how long the zygote may take to preload.

        Raises:
            SandboxError: the zygote did not start, the probe run failed, or the isolation
                level is below ``minimum_level``.
        """
        if minimum_level is not None and minimum_level not in LEVELS:
            raise SandboxError(f"Unknown isolation level {minimum_level!r}; one of {LEVELS}.")
        zygote = cls(
            preload=preload,
            extra_sys_path=extra_sys_path,
            python=python or sys.executable,
            base_dir=base_dir,
            unprivileged_uid=unprivileged_uid,
            use_landlock=use_landlock,
            max_frame_bytes=max_frame_bytes,
            start_timeout_s=start_timeout_s,
        )
        try:
            await zygote._launch()
            level = zygote.isolation.level
            if minimum_level is not None and LEVELS.index(level) < LEVELS.index(minimum_level):
                raise SandboxError(
                    f"Sandbox isolation level is {level}, below the required {minimum_level}."
                )
        except BaseException:
            await zygote.close()
            raise
        return zygote

    @property
    def isolation(self) -> IsolationReport:
        """What each child gets, as observed by a probe run at (re)start."""
        if self._isolation is None:
            raise SandboxError("The sandbox has not started.")
        return self._isolation

    @property
    def pid(self) -> int | None:
        """The zygote's pid while it runs."""
        return self._link.process.pid if self._link and self._link.alive else None

    @property
    def alive(self) -> bool:
        return self._link is not None and self._link.alive

    async def run(
        self, entry: str, payload: dict[str, Any], limits: Limits | None = None
    ) -> RunHandle:
        """Fork a child that calls ``entry(payload, emit)``; restarts a dead zygote first.

        Args:
            entry: ``"package.module:function"``, importable in the zygote.
            payload: a JSON object; only the child ever sees it.
            limits: resource limits; none but the defaults when omitted.

        Raises:
            SandboxError: ``entry`` is malformed, ``payload`` is not JSON or too large, the
                sandbox is closed, or the zygote could not be restarted.
        """
        if not _ENTRY.fullmatch(entry):
            raise SandboxError(f"Sandbox entry {entry!r} is not 'package.module:function'.")
        try:
            frame = encode({"payload": payload})
        except TypeError as exc:
            raise SandboxError(f"Run payload is not JSON-serialisable: {exc}.") from exc
        if len(frame) - HEADER_BYTES > self._max_frame:
            raise SandboxError(
                f"Run payload of {len(frame)} bytes is over the {self._max_frame}-byte limit."
            )
        link = await self._live_link()
        return self._start_run(link, entry, frame, limits or Limits())

    async def restart(self) -> None:
        """Replace the zygote (runs in flight end as crashes) and probe again."""
        async with self._restart_lock:
            if self._link is not None:
                await self._link.close()
            await self._launch()

    async def close(self) -> None:
        """Kill live runs, stop the zygote, remove the run directories. Idempotent."""
        if self._closed:
            return
        self._closed = True
        link = self._link
        if link is not None and link.alive:
            handles = list(link.runs.values())
            for handle in handles:
                handle.kill()
            if handles:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await asyncio.gather(*(h.wait() for h in handles))
        if link is not None:
            await link.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_base:
            shutil.rmtree(self._base, ignore_errors=True)

    async def __aenter__(self) -> Zygote:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------------

    async def _live_link(self) -> _Link:
        if self._closed:
            raise SandboxError("The sandbox is closed.")
        link = self._link
        if link is not None and link.alive:
            return link
        async with self._restart_lock:
            if self._link is None or not self._link.alive:
                await self._launch()
        assert self._link is not None
        return self._link

    def _start_run(
        self, link: _Link, entry: str, payload_frame: bytes, limits: Limits
    ) -> RunHandle:
        self._next_id += 1
        run_id = self._next_id
        header = RunHeader(
            id=run_id,
            entry=entry,
            run_dir=os.path.join(self._base, f"run-{run_id}"),
            output_path=os.path.join(self._base, f"run-{run_id}.out"),
            limits=limits,
        )
        return link.start_run(header, payload_frame, self._max_frame)

    async def _launch(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "control_fd": theirs.fileno(),
            "fulmen_path": [str(Path(fulmen.__file__).resolve().parent.parent)],
            "extra_sys_path": self._extra_sys_path,
            "preload": self._preload,
            "unprivileged_uid": self._uid,
            "landlock": self._use_landlock,
            "max_frame_bytes": self._max_frame,
        }
        try:
            # -I: ignore PYTHON* variables and the user's site directory, and do not put the
            # current directory on sys.path. A new session: a terminal's Ctrl-C is the
            # worker's to handle, not the zygote's.
            process = await asyncio.create_subprocess_exec(
                self._python,
                "-I",
                "-c",
                _BOOTSTRAP,
                json.dumps(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                env=dict(ZYGOTE_ENVIRONMENT),
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd="/",
            )
        except OSError as exc:
            ours.close()
            raise SandboxError(f"Could not start the sandbox zygote: {exc}.") from exc
        finally:
            theirs.close()
        link = _Link(loop, process, ours, self._tasks)
        self._link = link
        try:
            async with asyncio.timeout(self._start_timeout):
                ready = await link.ready
        except TimeoutError:
            await link.close(timeout_s=0)
            raise SandboxError(
                f"The sandbox zygote did not start within {self._start_timeout:g}s."
            ) from None
        self.preload_errors = dict(ready["preload_errors"])
        policy = Policy.from_record(ready["policy"])
        if policy.uid is not None:
            os.chmod(self._base, 0o711)  # let the child's uid reach its own directory
        self._isolation = await self._verify(link, policy)
        log.info("%s", self._isolation.describe())

    async def _verify(self, link: _Link, policy: Policy) -> IsolationReport:
        """Run the probe entry and believe only what it observed."""
        outside = os.path.join(self._base, "probe-outside")
        with open(outside, "w") as f:
            f.write("not for the child\n")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = f"fulmen-probe-{secrets.token_hex(8)}"
        try:
            listener.bind("\0" + name)
            listener.listen(1)
            payload = {
                "worker_pid": os.getpid(),
                "outside_file": outside,
                "outside_dir": self._base,
                "abstract_socket": name,
            }
            frame = encode({"payload": payload})
            handle = self._start_run(link, "fulmen.sandbox.probe:verify", frame, _PROBE_LIMITS)
            findings = [event async for event in handle]
        finally:
            listener.close()
            os.unlink(outside)
        result = handle.exit
        if result.kind != "ok" or len(findings) != 1:
            raise SandboxError(
                f"The sandbox probe run failed: {result.message}. {result.output}".strip()
            )
        expected: dict[str, list[int | None] | None] = {
            name: list(value) for name, value in planned_rlimits(_PROBE_LIMITS, 0).items()
        }
        expected["as"] = None
        return assess(policy, findings[0], expected)
