"""Finding out what the host allows, and checking what a child really gets.

Two halves, both run once per zygote start:

- :func:`host_facts` runs in the zygote before it forks any run: is it root, which Landlock
  ABI, and can the unprivileged uid read the interpreter. That last one is tried for real in
  a throwaway fork that switches uid, because permission bits along a path (``/root`` is 0700
  here, with pyenv under it) are easy to misjudge.
- :func:`verify` is a sandbox *entry*: the worker runs it as an ordinary run, through exactly
  the code path jobs take, and it reports what the hardened child observes about itself,
  including attempts at what must be forbidden (a file outside its run directory, the worker's
  ``/proc/<pid>/environ`` and ``mem``, signalling the worker). ``isolation.assess`` turns that
  into the report, so that nothing is claimed that was not seen to hold.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fulmen.sandbox import capabilities, landlock, libc, namespaces
from fulmen.sandbox.isolation import HostFacts
from fulmen.sandbox.limits import RESOURCES

__all__ = ["echo", "host_facts", "verify"]


def host_facts(unprivileged_uid: int, python_paths: Sequence[str]) -> HostFacts:
    """Probe the host once (in the zygote, before any run)."""
    euid = os.geteuid()
    if euid == 0:
        reachable, detail = _uid_can_read(unprivileged_uid, python_paths)
    else:
        reachable, detail = False, "the worker is not root"
    return HostFacts(
        euid=euid,
        landlock_abi=landlock.abi_version(),
        cap_last=capabilities.last_cap(),
        unprivileged_uid=unprivileged_uid,
        uid_reachable=reachable,
        uid_detail=detail,
        userns_detail=_userns_detail() if euid == 0 else _NOT_ROOT,
    )


_NOT_ROOT = (
    "the worker is not root: giving each run a host uid of its own needs the privilege to "
    "map ids (run the worker as root in its container, or as a root-owned service)"
)


def _userns_detail() -> str:
    """Empty if this process can make the namespaces a run needs; otherwise why not.

    Tried for real in a throwaway fork: sysctls (``user.max_user_namespaces``,
    ``kernel.unprivileged_userns_clone``), a container's seccomp profile or an LSM can each
    refuse, and only the attempt tells.
    """
    detail = _try_in_fork(
        lambda: namespaces.unshare(namespaces.RUN_NAMESPACES | namespaces.CLONE_NEWPID)
    )
    if not detail:
        return ""
    return (
        f"the kernel refused new user, pid and mount namespaces ({detail}): "
        "allow them (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 "
        "where it exists; in Docker, a seccomp profile that allows unshare and clone)"
    )


def _uid_can_read(uid: int, paths: Sequence[str]) -> tuple[bool, str]:
    """Become ``uid`` in a throwaway fork and try to list or read each path."""

    def attempt() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        for path in paths:
            try:
                if os.path.isdir(path):
                    os.listdir(path)
                else:
                    with open(path, "rb"):
                        pass
            except OSError as exc:
                raise RuntimeError(f"{path}: {exc.strerror}") from None

    detail = _try_in_fork(attempt)
    if not detail:
        return True, "every interpreter path is readable"
    return False, detail


def _try_in_fork(action: Callable[[], object]) -> str:
    """Run ``action`` in a throwaway fork, so that what it changes (uid, namespaces) stays
    there: ``""`` when it returned, else what it raised, in words."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the throwaway fork
        try:
            os.close(read_end)
            action()
            os._exit(0)
        except BaseException as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            os.write(write_end, (text or type(exc).__name__).encode()[:1000])
            os._exit(1)
        finally:
            os._exit(2)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        detail = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return ""
    return detail or f"the attempt ended with status {status}"


def verify(payload: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """Sandbox entry: report what this child can see and do (see the module docstring).

    ``payload``: ``worker_pid``, ``outside_file`` (readable by the worker, outside the run
    directory), ``outside_dir`` (writable by the worker), ``abstract_socket`` (a name the
    worker listens on), ``worker_port`` (a TCP port the worker listens on, on 127.0.0.1).
    """
    worker = int(payload["worker_pid"])
    status = _proc_status()
    uid_map = _read_text("/proc/self/uid_map").split()
    findings = {
        "pid": os.getpid(),
        "visible_pids": _visible_pids(),
        "uid_map": " ".join(uid_map),
        "host_uid": _host_uid(os.getuid(), uid_map),
        "chmod_host": _attempt(lambda: _chmod_same(os.path.realpath(sys.executable))),
        "root_writable": _attempt(lambda: _create("/")),
        "list_etc": _attempt(lambda: os.listdir("/etc")),
        "seccomp_mode": int(status.get("Seccomp", "0")),
        "worker_port": _attempt(lambda: _connect_tcp(int(payload["worker_port"]))),
        "uid": os.getuid(),
        "env": sorted(os.environ),
        "sid_is_pid": os.getsid(0) == os.getpid(),
        "pgid_is_pid": os.getpgid(0) == os.getpid(),
        "fds": _open_fds(),
        "rlimits": {name: _rlimit(which) for name, which in RESOURCES.items()},
        "no_new_privs": libc.prctl(libc.PR_GET_NO_NEW_PRIVS),
        "dumpable": libc.prctl(libc.PR_GET_DUMPABLE),
        "caps": {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd")},
        "worker_environ": _attempt(lambda: _read(f"/proc/{worker}/environ")),
        "worker_mem": _attempt(lambda: _read(f"/proc/{worker}/mem", size=0)),
        "outside_read": _attempt(lambda: _read(payload["outside_file"])),
        "outside_write": _attempt(lambda: _create(payload["outside_dir"])),
        "signal_worker": _attempt(lambda: os.kill(worker, 0)),
        "abstract_connect": _attempt(lambda: _connect_abstract(payload["abstract_socket"])),
    }
    # Last: where seccomp does not refuse it, it moves this process to a new namespace.
    findings["unshare"] = _attempt(lambda: namespaces.unshare(namespaces.CLONE_NEWUSER))
    emit(findings)


def echo(payload: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """Sandbox entry that emits its payload back: a health check, and the benchmark's run."""
    emit(payload)


def _attempt(action: Callable[[], object]) -> str:
    """``"allowed"``, ``"denied"`` (EACCES/EPERM) or ``"error: <errno name>"``."""
    try:
        action()
    except PermissionError:
        return "denied"
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError) and exc.errno is None:
            return "error: ETIMEDOUT"
        return f"error: {errno.errorcode.get(exc.errno or 0, str(exc))}"
    return "allowed"


def _read(path: str, size: int = 1) -> None:
    with open(path, "rb", buffering=0) as f:
        f.read(size)


def _create(directory: str) -> None:
    path = os.path.join(directory, f"probe-write-{os.getpid()}")
    with open(path, "x"):
        pass
    os.unlink(path)


def _visible_pids() -> list[int] | None:
    """The pids ``/proc`` lists, or None where Landlock keeps it from being listed at all."""
    try:
        return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    except PermissionError:
        return None


def _connect_tcp(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _chmod_same(path: str) -> None:
    os.chmod(path, os.stat(path).st_mode & 0o7777)


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _host_uid(uid: int, uid_map: list[str]) -> int:
    """The host uid behind ``uid``: the first line of ``/proc/self/uid_map`` is enough, as
    a run's namespace maps exactly one id."""
    if len(uid_map) >= 3 and int(uid_map[0]) <= uid < int(uid_map[0]) + int(uid_map[2]):
        return int(uid_map[1]) + uid - int(uid_map[0])
    return uid


def _connect_abstract(name: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + name)


def _proc_status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _open_fds() -> list[int]:
    # Listing /proc/self/fd opens one more descriptor, closed by the time we look at it:
    # keep only those still open.
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        fds.append(int(name))
    return sorted(fds)


def _rlimit(which: int) -> list[int | None]:
    return [None if v == resource.RLIM_INFINITY else v for v in resource.getrlimit(which)]
