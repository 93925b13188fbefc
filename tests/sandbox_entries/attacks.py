"""What job code tries, to get out of its sandbox: each attack returns what happened, as text.

Self-contained on purpose: the escape tests paste this module's source into a job's body
(``job_body``), so the attacks run exactly as a user's job would, through the runtime, in the
sandbox of ``fulmen run``, of the worker and of the runner's smart workers.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
from collections.abc import Callable
from typing import Any


def attempt(action: Callable[[], object]) -> str:
    """``"allowed"``, or the errno's name the kernel answered with."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "allowed"


def chmod(path: str, mode: int = 0o4755) -> str:
    return attempt(lambda: os.chmod(path, mode))


def read(path: str) -> str:
    def go() -> None:
        with open(path, "rb") as f:
            f.read(1)

    return attempt(go)


def write(path: str) -> str:
    def go() -> None:
        with open(path, "w") as f:
            f.write("owned\n")

    return attempt(go)


def listdir(path: str) -> list[str] | str:
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))


def signal(pid: int, number: int = 0) -> str:
    return attempt(lambda: os.kill(pid, number))


def ptrace(pid: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        return errno.errorcode.get(ctypes.get_errno(), "?")
    return "allowed"


def connect(host: str, port: int) -> str:
    def go() -> None:
        with socket.create_connection((host, port), timeout=3):
            pass

    try:
        go()
    except TimeoutError:
        return "ETIMEDOUT"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "allowed"


def connect_scoped(host: str, port: int, interface: str = "", seconds: float = 5.0) -> str:
    """``connect`` to an IPv4 or IPv6 address (a link-local one through ``interface``, as
    this namespace numbers it), again and again until ``seconds`` have passed: a fresh
    namespace's IPv6 address is tentative for a few seconds (duplicate detection), and a
    connection from it goes nowhere until then."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    result = "ETIMEDOUT"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        where: tuple[Any, ...] = (host, port)
        try:
            if family == socket.AF_INET6:
                scope = socket.if_nametoindex(interface) if interface else 0
                where = (host, port, 0, scope)
            with socket.socket(family) as s:
                s.settimeout(1)
                s.connect(where)
            return "allowed"
        except TimeoutError:
            result = "ETIMEDOUT"
        except OSError as exc:
            result = errno.errorcode.get(exc.errno or 0, str(exc))
            if result in ("ECONNREFUSED", "EACCES", "EPERM"):
                return result
        time.sleep(0.2)
    return result


def new_user_namespace() -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        return errno.errorcode.get(ctypes.get_errno(), "?")
    return "allowed"


def fork_bomb(seconds: float = 2.0) -> dict[str, Any]:
    """Fork until the kernel says no; every child forks too. Returns how far it got."""
    made, refused = 0, ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not refused:
        try:
            pid = os.fork()
        except OSError as exc:
            refused = errno.errorcode.get(exc.errno or 0, str(exc))
            break
        if pid == 0:
            while True:  # each child forks on, or waits
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.05)
        made += 1
    return {"made": made, "refused": refused}


def memory_bomb(children: int = 4, mb: int = 400) -> list[int]:
    """Fork ``children`` processes that each fill ``mb`` MB; the exit statuses seen."""
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            block = bytearray(b"\x01") * (mb * 1024 * 1024)
            time.sleep(1)  # all of them at once
            os._exit(len(block) & 1)
        pids.append(pid)
    return [os.waitpid(pid, 0)[1] for pid in pids]


def fill_disk() -> dict[str, Any]:
    """Write 1 MiB at a time, 32 MiB a file (under the file size rlimit), until refused."""
    where = os.environ["TMPDIR"]
    chunk = b"\0" * (1024 * 1024)
    written = 0
    try:
        while written < 4096:
            with open(os.path.join(where, f"fill-{written}"), "wb") as f:
                for _ in range(32):
                    f.write(chunk)
                    f.flush()
                    written += 1
    except OSError as exc:
        return {"mb": written, "error": errno.errorcode.get(exc.errno or 0, str(exc))}
    return {"mb": written, "error": ""}


def daemonize() -> int:
    """Double fork and setsid: a grandchild that would outlive the run, burning CPU."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                pass
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def source() -> str:
    """This module's text, to paste into a job."""
    with open(__file__) as f:
        text = f.read().split("\n\n\ndef source()")[0].split('"""', 2)[2]
    return text.replace("from __future__ import annotations\n", "")


def job_body(expression: str) -> str:
    """A job that runs the attacks and puts ``expression``'s value in ``state.data``."""
    return (
        source()
        + "\n\n@fn\ndef attack(state):\n"
        + f"    state['data'] = {expression}\n"
        + "    return state\n"
    )
