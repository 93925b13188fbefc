"""The zygote: a clean interpreter that preloads, then forks one child per run.

Started by the worker (``fulmen.sandbox.process``) as a fresh interpreter with a scrubbed
environment, so that a forked child inherits nothing secret: not the worker's variables, not
its tokens, not its memory (DESIGN.md, "Security model"). It preloads what jobs will import,
freezes the garbage collector's view of those objects, and loops: receive a run header with
the child's socket attached, hand both to a child, report the pid; when a child exits, reap
it and report.

The fork happens *before* the run arrives: one forked **spare** always waits (see
``child.spare``), and a new one is forked right after the old one is handed a run, while
that run starts on the other CPU. Forking copies the page tables of everything preloaded
(about 1-2 ms with the runtime's imports), so this takes it off each run's latency.

It is single-threaded (forking a threaded process is unsafe) and never reads a run socket:
payloads, which carry credentials, go from the worker to the child directly.

*Resource handling*: the zygote owns its children. It reaps each one through a pidfd, which
wakes the loop without signal handlers (a handler would be inherited by every child), and
kills the child's process group just before reaping it, while the zombie still pins the
pid, so nothing can be reused under our feet. When the control socket closes (the worker
exited or closed the sandbox), it kills every child and exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import selectors
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fulmen.sandbox import capabilities, child, landlock, paths, probe
from fulmen.sandbox.frames import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode
from fulmen.sandbox.isolation import Policy, decide_policy
from fulmen.sandbox.wire import RunHeader

__all__ = ["main"]

_CONTROL_BUFFER = 1 << 16


@dataclass(frozen=True, slots=True)
class _Spare:
    pid: int
    sock: socket.socket  # the zygote's end; the spare waits on the other


class _Zygote:
    def __init__(self, control: socket.socket, settings: child.Settings) -> None:
        self._control = control
        self._settings = settings
        self._decoder = FrameDecoder(_CONTROL_BUFFER)
        self._selector = selectors.DefaultSelector()
        self._pids: dict[int, int] = {}  # run id -> pid, until reaped
        self._runs: dict[int, int] = {}  # pid -> run id, for children that have a run
        self._spare: _Spare | None = None
        self._worker_gone = False

    def serve(self) -> None:
        """Loop until the worker closes the control socket."""
        self._selector.register(self._control, selectors.EVENT_READ, None)
        self._spare = self._fork_spare()
        while not self._worker_gone:
            for key, _ in self._selector.select():
                if key.data is None:
                    self._worker_gone = not self._on_control()
                else:
                    self._reap(key.fileobj, key.data)
        self._shutdown()

    def announce(self, ready: dict[str, Any]) -> None:
        """Tell the worker we are ready to fork runs."""
        self._send(ready)

    def _send(self, record: dict[str, Any]) -> None:
        try:
            self._control.sendall(encode(record))
        except (BrokenPipeError, ConnectionResetError):
            self._worker_gone = True  # it closed while we were busy; serve() winds down

    def _on_control(self) -> bool:
        try:
            data, fds, flags, _ = socket.recv_fds(self._control, _CONTROL_BUFFER, 4)
        except ConnectionResetError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise RuntimeError("control message truncated")
        for record in self._decoder.feed(data):
            if record["t"] == "run":
                self._start(RunHeader.from_record(record), fds)
                fds = []
            elif record["t"] == "kill":
                self._kill(int(record["id"]))
        for fd in fds:  # descriptors that came with something other than a run
            os.close(fd)
        return True

    def _fork_spare(self) -> _Spare | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            child.spare(theirs.fileno(), self._settings)
        theirs.close()
        self._selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
        return _Spare(pid, ours)

    def _start(self, header: RunHeader, fds: list[int]) -> None:
        """Hand the run to the spare (forking one now if there is none), then fork the next."""
        try:
            if len(fds) != 1:
                self._send({"t": "failed", "id": header.id, "message": "no run socket attached"})
                return
            spare, self._spare = self._spare or self._fork_spare(), None
            if spare is None:
                self._send({"t": "failed", "id": header.id, "message": "fork failed"})
                return
            try:
                socket.send_fds(spare.sock, [encode(header.to_record())], fds)
            except OSError as exc:  # the spare died meanwhile; its reaping is silent
                self._send({"t": "failed", "id": header.id, "message": f"spare lost: {exc}"})
                return
            finally:
                spare.sock.close()
            self._pids[header.id] = spare.pid
            self._runs[spare.pid] = header.id
            self._send({"t": "started", "id": header.id, "pid": spare.pid})
        finally:
            for fd in fds:
                os.close(fd)
        self._spare = self._fork_spare()

    def _kill(self, run_id: int) -> None:
        pid = self._pids.get(run_id)
        if pid is not None:
            _kill_run(pid)

    def _reap(self, pidfd: Any, pid: int) -> None:
        self._selector.unregister(pidfd)
        # The child is a zombie now; its group may still hold processes the job started.
        _kill_run(pid)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        run_id = self._runs.pop(pid, None)
        if run_id is None:  # a spare that died before it got a run
            if self._spare is not None and self._spare.pid == pid:
                self._spare.sock.close()
                self._spare = None
            return
        del self._pids[run_id]
        record: dict[str, Any] = {"t": "exited", "id": run_id, "maxrss": usage.ru_maxrss}
        if os.WIFSIGNALED(status):
            record["signal"] = os.WTERMSIG(status)
        else:
            record["code"] = os.waitstatus_to_exitcode(status)
        self._send(record)

    def _shutdown(self) -> None:
        pids = list(self._pids.values())
        if self._spare is not None:
            pids.append(self._spare.pid)
        for pid in pids:
            _kill_run(pid)
        for pid in pids:
            os.waitpid(pid, 0)


def _kill_run(pid: int) -> None:
    """SIGKILL the run's process group, and the child itself in case it has not yet called
    setsid (then it has no descendants either)."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(target, signal.SIGKILL)


def _preload(names: Sequence[str]) -> dict[str, str]:
    errors = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a broken adaptor must not stop the sandbox
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors


def _warm_ups(names: Sequence[str], errors: dict[str, str]) -> tuple[Callable[[], None], ...]:
    """Resolve and run each warm-up once here; those that fail are reported, not kept."""
    kept = []
    for name in names:
        try:
            function = child.load_callable(name)
            function()
        except BaseException as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
        else:
            kept.append(function)
    return tuple(kept)


def _grants() -> tuple[list[tuple[paths.OpenPath, int]], list[str]]:
    """Open every path children may use, with its Landlock rights; also the Python ones."""
    python = paths.python_paths()
    read_only = paths.outermost(python + [p for p in paths.SYSTEM_READ_ONLY if os.path.exists(p)])
    grants = [(p, landlock.READ_ONLY) for p in paths.open_paths(read_only)]
    grants += [
        (p, landlock.READ_WRITE_FILE) for p in paths.open_paths(list(paths.DEVICES_READ_WRITE))
    ]
    return grants, python


def _drop_what_children_never_need(policy: Policy) -> None:
    """Done once here rather than in every child: forks inherit it (capabilities(7)).

    The zygote itself never executes a program, so an empty bounding set and locked
    securebits cost it nothing, while it keeps the effective capabilities it needs to
    fork, kill and (in uid mode) hand children to another uid.
    """
    if not policy.drop_capabilities:
        return
    if policy.uid is None:
        # Uid 0 stays: make execve grant it nothing. Not in uid mode, where the securebit
        # NO_SETUID_FIXUP would stop setuid() from clearing the child's capabilities.
        capabilities.lock_securebits()
    capabilities.drop_bounding_set(policy.cap_last)


def main(config: dict[str, Any]) -> None:
    """Entry point of ``python -c`` bootstrap (see ``process.py``); ``config`` is non-secret.

    Keys: ``control_fd``, ``preload``, ``unprivileged_uid``, ``landlock``, ``max_frame_bytes`` (the
    bootstrap has already set ``sys.path``).
    """
    control = socket.socket(fileno=int(config["control_fd"]))
    control.setblocking(True)
    preload_errors = _preload(config["preload"])
    warm_ups = _warm_ups(config.get("warm_up", ()), preload_errors)
    grants, python = _grants()
    facts = probe.host_facts(int(config["unprivileged_uid"]), python)
    policy = decide_policy(facts, use_landlock=bool(config["landlock"]))
    _drop_what_children_never_need(policy)
    max_frame = int(config.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES))
    # Everything imported so far is shared copy-on-write with every child; keep the
    # collector from touching (and so copying) those pages in each child.
    gc.collect()
    gc.freeze()
    zygote = _Zygote(control, child.Settings(policy, grants, os.getpid(), max_frame, warm_ups))
    zygote.announce(
        {
            "t": "ready",
            "pid": os.getpid(),
            "preload_errors": preload_errors,
            "policy": policy.to_record(),
            "landlock_abi": facts.landlock_abi,
            "threads": threading.active_count(),
        }
    )
    zygote.serve()
