"""Entries run inside sandboxed children by tests/integration/test_sandbox_*.py.

Each takes ``(payload, emit)``. They report what they saw or could do as events, so that the
tests assert on the child's own observations. Attempts return ``"ok"`` or the exception's
type name, e.g. ``"PermissionError"``.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

Emit = Callable[[dict[str, Any]], None]


def _attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _pid_namespace() -> int:
    """The inode of this process's pid namespace: the same number seen from the host."""
    return os.stat("/proc/self/ns/pid").st_ino


def count(payload: dict[str, Any], emit: Emit) -> None:
    """Emit ``{"i": 0}`` .. ``{"i": n-1}``, plus ``pad`` characters of filler in each."""
    pad = "x" * int(payload.get("pad", 0))
    for i in range(int(payload["n"])):
        emit({"i": i, "pad": pad} if pad else {"i": i})


def trivial(payload: dict[str, Any], emit: Emit) -> None:
    emit({"ok": True})


def from_threads(payload: dict[str, Any], emit: Emit) -> None:
    """``threads`` threads each emit ``n`` events ``{"t", "i"}`` at once."""
    barrier = threading.Barrier(int(payload["threads"]))

    def work(t: int) -> None:
        barrier.wait()
        for i in range(int(payload["n"])):
            emit({"t": t, "i": i})

    workers = [threading.Thread(target=work, args=(t,)) for t in range(payload["threads"])]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def whoami(payload: dict[str, Any], emit: Emit) -> None:
    """Identity, place and open descriptors of the child; echoes the payload."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        fds.append(int(name))
    emit(
        {
            "pid": os.getpid(),
            "pid_ns": _pid_namespace(),
            "ppid": os.getppid(),
            "uid": os.getuid(),
            "sid": os.getsid(0),
            "pgid": os.getpgid(0),
            "cwd": os.getcwd(),
            "fds": sorted(fds),
            "environ": dict(os.environ),
            "tempdir": tempfile.gettempdir(),
            "random": random.getrandbits(64),
            "payload": payload,
        }
    )


def secrets(payload: dict[str, Any], emit: Emit) -> None:
    """Try each way to a secret the worker holds; ``payload`` names the targets (the zygote
    defaults to our parent, which has no pid in a pid namespace of our own)."""
    worker, zygote = payload["worker_pid"], payload.get("zygote_pid", os.getppid())
    emit(
        {
            "environ_has_secret": payload["secret_value"] in repr(dict(os.environ)),
            "own_environ_has_secret": payload["secret_value"].encode() in _own_environ_or_empty(),
            "worker_environ": _attempt(lambda: _read(f"/proc/{worker}/environ")),
            "worker_mem": _attempt(lambda: _read_mem(worker)),
            "worker_cmdline": _attempt(lambda: _read(f"/proc/{worker}/cmdline")),
            "zygote_environ": _attempt(lambda: _read(f"/proc/{zygote}/environ")),
            "ptrace_worker": _ptrace_attach(worker),
            "outside_file": _attempt(lambda: _read(payload["secret_file"])),
            "outside_dir": _attempt(lambda: os.listdir(os.path.dirname(payload["secret_file"]))),
            "signal_worker": _attempt(lambda: os.kill(worker, 0)),
        }
    )


def _own_environ_or_empty() -> bytes:
    try:
        return _read("/proc/self/environ")
    except OSError:
        return b""


def _read_mem(pid: int) -> None:
    # Opening is the access check (PTRACE_MODE_ATTACH); once open, any mapped address could
    # be read, so an open that succeeds is already the leak.
    with open(f"/proc/{pid}/mem", "rb"):
        pass


def _ptrace_attach(pid: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_ATTACH, PTRACE_DETACH = 16, 17
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
        return "ok"
    return os.strerror(ctypes.get_errno())


def read_file(payload: dict[str, Any], emit: Emit) -> None:
    emit(
        {
            "read": _attempt(lambda: _read(payload["path"])),
            "list": _attempt(lambda: os.listdir(os.path.dirname(payload["path"]))),
            "write_beside": _attempt(lambda: open(payload["path"] + ".intruder", "x").close()),
        }
    )


def listdir(payload: dict[str, Any], emit: Emit) -> None:
    """The names in ``payload["path"]``, or the error's type name."""
    try:
        emit({"names": sorted(os.listdir(payload["path"]))})
    except OSError as exc:
        emit({"names": type(exc).__name__})


def claim_run_dir(payload: dict[str, Any], emit: Emit) -> None:
    """Write a file named after ``payload["n"]`` into the run directory, report what the
    directory holds then, and wait to be killed (so that the file stays while others look)."""
    with open(f"run-{payload['n']}", "x"):
        pass
    emit({"cwd": os.getcwd(), "names": sorted(os.listdir(".")), "pid_ns": _pid_namespace()})
    time.sleep(3600)


def keep_secret_then_wait(payload: dict[str, Any], emit: Emit) -> None:
    """Write a file into the run directory, report its path, then wait to be killed."""
    path = os.path.join(os.getcwd(), "mine.txt")
    with open(path, "w") as f:
        f.write(payload["secret"])
    emit({"path": path, "read_own": _read(path).decode()})
    time.sleep(3600)


def sleep(payload: dict[str, Any], emit: Emit) -> None:
    emit({"sleeping": True})
    time.sleep(float(payload.get("seconds", 3600)))


def spawn_then_sleep(payload: dict[str, Any], emit: Emit) -> None:
    """Start a grandchild (``sleep``), report its pid, then wait to be killed."""
    grandchild = subprocess.Popen(["sleep", "3600"])
    emit({"grandchild": grandchild.pid, "pid_ns": _pid_namespace()})
    time.sleep(3600)


def fork_holding_socket(payload: dict[str, Any], emit: Emit) -> None:
    """Leave a grandchild that keeps the run socket open, and return at once."""
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    emit({"grandchild": pid, "pid_ns": _pid_namespace()})


def hog_memory(payload: dict[str, Any], emit: Emit) -> None:
    emit({"hogging": True})
    blocks = []
    while True:
        blocks.append(bytearray(8 * 1024 * 1024))


def spin(payload: dict[str, Any], emit: Emit) -> None:
    while True:
        pass


def exit_with(payload: dict[str, Any], emit: Emit) -> None:
    emit({"exiting": payload["code"]})
    os.write(2, b"last words on stderr\n")
    os._exit(int(payload["code"]))


def segfault(payload: dict[str, Any], emit: Emit) -> None:
    ctypes.string_at(0)


def fail(payload: dict[str, Any], emit: Emit) -> None:
    emit({"about_to": "fail"})
    raise ValueError(payload.get("message", "boom"))


def announce_then_linger(payload: dict[str, Any], emit: Emit) -> None:
    """Forge the wrapper's final record and end of stream, then try to keep running."""
    from fulmen.sandbox.frames import encode

    emit({"pid": os.getpid(), "pid_ns": _pid_namespace()})
    os.write(3, encode({"exit": 0, "maxrss": 1}))
    socket.socket(fileno=3).shutdown(socket.SHUT_RDWR)
    time.sleep(3600)


def announce_and_keep_the_socket(payload: dict[str, Any], emit: Emit) -> None:
    """Forge the wrapper's final record but not the end of stream, then keep running."""
    from fulmen.sandbox.frames import encode

    emit({"pid": os.getpid(), "pid_ns": _pid_namespace()})
    os.write(3, encode({"exit": 0, "maxrss": 1}))
    time.sleep(3600)


def emit_garbage(payload: dict[str, Any], emit: Emit) -> None:
    """Write a frame that is not JSON straight onto the run socket."""
    os.write(3, b"\x00\x00\x00\x05hello")
    time.sleep(3600)


# -- warm-ups (Zygote.start(warm_up=...)) -----------------------------------------------------

_WARM: list[tuple[int, int]] = []
_HINTS: list[Any] = []


def warm_up(hint: dict[str, Any] | None = None) -> None:
    """Record the process it ran in, as its pid and pid namespace: the zygote once, then
    each spare before its run; and the warm hint it was given."""
    _WARM.append((os.getpid(), _pid_namespace()))
    _HINTS.append(hint)


def broken_warm_up(hint: dict[str, Any] | None = None) -> None:
    raise RuntimeError("cannot warm up")


def warmed(payload: dict[str, Any], emit: Emit) -> None:
    emit(
        {
            "warmed_in": list(_WARM),
            "hints": list(_HINTS),
            "pid": os.getpid(),
            "pid_ns": _pid_namespace(),
        }
    )


_FOUND: dict[str, str] = {}


def hostile_warm_up(hint: dict[str, Any] | None = None) -> None:
    """What a pinned package's import could do in a spare warmed for its run, before the run
    arrives (``PyEnv.warm_up`` imports them there): list the descriptors the spare holds and
    use those of the zygote's it finds: write another run's OOM eventfd (the zygote would end
    that run as out of memory), signal through a pidfd. (Taking the zygote's own descriptors
    out of its epoll set would stop it for good; that is not tried, the listing shows it.)"""
    if not hint or not hint.get("hostile"):
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor
        _FOUND[name] = target
        if target == "anon_inode:[eventfd]":
            _attempt(lambda fd=fd: os.eventfd_write(fd, 1))
        elif target == "anon_inode:[pidfd]":
            _attempt(lambda fd=fd: signal.pidfd_send_signal(fd, signal.SIGKILL))


def found_in_warm_up(payload: dict[str, Any], emit: Emit) -> None:
    emit({"found": dict(_FOUND)})
