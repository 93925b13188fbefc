"""A cgroup per run, beneath the zygote's own: memory for all its processes, pids, CPU weight.

Issue 12. rlimits count one process at a time (four forked children of 400 MB each fit a
500 MB ``RLIMIT_AS``), and the kernel never applies ``RLIMIT_NPROC`` to uid 0; a cgroup counts
the whole run. Each spare gets a fresh cgroup before its run arrives, created by the zygote
under ``<the zygote's cgroup>/fulmen-<zygote pid>/``: inside the subtree the host delegated
to the worker, never elsewhere, so every limit the host sets on the worker still holds.

- **v2** (unified): one directory per run, ``memory.max`` (with ``memory.swap.max`` 0 and
  ``memory.oom.group`` 1, so an OOM kill takes the whole run), ``pids.max``, ``cpu.weight``.
  The zygote's cgroup must be able to enable controllers for its children: it must be the
  namespace root, or hold no process itself (cgroup v2's "no internal processes" rule).
- **v1** (one hierarchy per controller): ``memory``, ``pids`` and, when present, ``cpu``; the
  kernel's OOM killer picks one process, so the zygote listens on ``memory.oom_control``
  through ``cgroup.event_control`` and ends the whole run on the first OOM kill.

Every write is a single small ``write(2)``; a run's cgroup is removed once it is empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["CgroupTree", "RunCgroup", "discover"]

_V1_REQUIRED: Final = ("memory", "pids")
_V1_OPTIONAL: Final = ("cpu",)
_V2_CONTROLLERS: Final = ("memory", "pids", "cpu")
_MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CgroupTree:
    """Where this zygote makes its runs' cgroups: one directory per v1 controller, or one."""

    version: int
    parents: Mapping[str, str]
    """Controller name (``""`` on v2) → ``…/fulmen-<zygote pid>``."""

    def describe(self) -> str:
        where = ", ".join(sorted(set(self.parents.values())))
        return f"cgroup v{self.version} ({where})"

    def run_cgroup(self, name: str) -> RunCgroup:
        """Create the cgroup ``name`` in every hierarchy (raises OSError)."""
        dirs = {
            controller: os.path.join(parent, name) for controller, parent in self.parents.items()
        }
        for path in dirs.values():
            os.mkdir(path)
        return RunCgroup(self.version, dirs)

    def remove(self) -> None:
        """Remove the zygote's directories (each run's must be gone already); best effort."""
        for parent in self.parents.values():
            with contextlib.suppress(OSError):
                os.rmdir(parent)


@dataclass(slots=True)
class RunCgroup:
    """One run slot's cgroup (in each v1 hierarchy, or the one v2 directory), used by one
    run after another (``slots.py``)."""

    version: int
    dirs: Mapping[str, str]
    limits: tuple[int | None, int] | None = None
    """The memory and pids limits written last."""
    oom_kills_before: int = 0
    """:meth:`oom_kills` when the current run joined: the count is the cgroup's, not the run's."""
    # The files every run reads or writes, named once and opened once, at their first use
    # (``_open``): every run of the slot writes or reads them, and the zygote's loop is
    # cheaper for every call it does not make (each is pages written, and copied, after a
    # fork). A spare closes what it inherits of them first of all (child.spare).
    _procs: tuple[str, ...] = field(init=False, repr=False)
    _counted: str = field(init=False, repr=False)
    _oom_counts: str = field(init=False, repr=False)
    _fds: dict[tuple[str, int], int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._procs = tuple(os.path.join(path, "cgroup.procs") for path in self.dirs.values())
        # Where every process is counted: pids, or v2's one directory.
        self._counted = os.path.join(self.dirs.get("pids") or self.dirs[""], "cgroup.procs")
        self._oom_counts = (
            f"{self.dirs['']}/memory.events"
            if self.version == 2
            else f"{self.dirs['memory']}/memory.oom_control"
        )

    def attach(self, pid: int) -> None:
        """Move ``pid`` (a new run) here."""
        self.oom_kills_before = self.oom_kills()
        data = str(pid).encode()
        for path in self._procs:
            os.write(self._open(path, os.O_WRONLY), data)

    def is_empty(self) -> bool:
        """No process left in it."""
        try:
            return not os.pread(self._open(self._counted, os.O_RDONLY), 1, 0)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENODEV):  # the cgroup is gone
                return True
            raise

    def _open(self, path: str, flags: int) -> int:
        """``path``'s descriptor for ``flags``, opened at the first call (a control file's
        reads start over at offset 0; writes to ``cgroup.procs`` ignore the offset). The
        pids hierarchy's ``cgroup.procs`` is both written and read: two descriptors."""
        fd = self._fds.get((path, flags))
        if fd is None:
            fd = self._fds[path, flags] = os.open(path, flags | os.O_CLOEXEC)
        return fd

    def _close_files(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def set_limits(self, limits: tuple[int | None, int]) -> None:
        """Write ``(memory_mb, pids)`` unless they are what the cgroup has already."""
        if limits != self.limits:
            self.limit(*limits)
            self.limits = limits

    def limit(self, memory_mb: int | None, pids: int) -> None:
        """Write a run's limits (``None``: no memory limit, undoing the last run's)."""
        if self.version == 2:
            path = self.dirs[""]
            _write(f"{path}/pids.max", str(pids))
            _write(f"{path}/memory.max", "max" if memory_mb is None else str(memory_mb * _MIB))
            _write_if_present(f"{path}/memory.swap.max", "0")
            _write(f"{path}/memory.oom.group", "1")
            return
        _write(f"{self.dirs['pids']}/pids.max", str(pids))
        memory = self.dirs["memory"]
        size = "-1" if memory_mb is None else str(memory_mb * _MIB)
        # Swap must not extend the limit: memory+swap capped at the same size. The kernel
        # keeps memsw >= memory at every step, so which one goes first depends on whether
        # the limit goes up or down.
        steps = [("memory.limit_in_bytes", False), ("memory.memsw.limit_in_bytes", True)]
        try:
            for name, optional in steps:
                _write_value(f"{memory}/{name}", size, optional)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            for name, optional in reversed(steps):
                _write_value(f"{memory}/{name}", size, optional)
        # v1 leaves socket buffers out of the memory limit unless they have one of their
        # own: a run could otherwise queue gigabytes in TCP buffers on the host's account.
        _write_value(f"{memory}/memory.kmem.tcp.limit_in_bytes", size, True)

    def watch_oom(self) -> int | None:
        """v1: an eventfd that becomes readable on the cgroup's first OOM; None on v2, where
        ``memory.oom.group`` ends the whole run by itself."""
        if self.version == 2:
            return None
        control = self._open(self._oom_counts, os.O_RDONLY)  # memory.oom_control, on v1
        event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            registry = self._open(f"{self.dirs['memory']}/cgroup.event_control", os.O_WRONLY)
            os.write(registry, f"{event} {control}".encode())
        except OSError:
            os.close(event)
            raise
        return event

    def oom_kills(self) -> int:
        """How many processes in this cgroup the OOM killer ended, ever (see
        :attr:`oom_kills_before`)."""
        try:
            text = os.pread(self._open(self._oom_counts, os.O_RDONLY), 4096, 0).decode()
        except OSError:
            return 0
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> bool:
        """rmdir in every hierarchy; False while a process of the run still exists."""
        self._close_files()
        done = True
        for path in self.dirs.values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                done = False
        return done


def discover(zygote_pid: int) -> tuple[CgroupTree | None, str]:
    """Find this process's cgroups and make ``fulmen-<pid>`` beneath them.

    Returns the tree, or None and the reason in words an operator can act on.
    """
    try:
        with open("/proc/self/cgroup") as f:
            membership = _parse_membership(f.read())
        mounts = _cgroup_mounts()
    except OSError as exc:
        return None, f"cannot read this process's cgroups: {exc.strerror}"
    own_v2 = membership.get("")
    v2_mount = mounts.get("")
    if own_v2 is not None and v2_mount is not None:
        tree, reason = _discover_v2(v2_mount + own_v2, zygote_pid)
        if tree is not None:
            return tree, ""
        if not all(c in membership and c in mounts for c in _V1_REQUIRED):
            return None, reason
    return _discover_v1(membership, mounts, zygote_pid)


def _discover_v2(own: str, zygote_pid: int) -> tuple[CgroupTree | None, str]:
    try:
        with open(os.path.join(own, "cgroup.controllers")) as f:
            available = f.read().split()
    except OSError as exc:
        return None, f"cannot read {own}/cgroup.controllers: {exc.strerror}"
    missing = [c for c in ("memory", "pids") if c not in available]
    if missing:
        return None, (
            f"the cgroup v2 controllers {', '.join(missing)} are not delegated to {own} "
            "(enable them in the parent's cgroup.subtree_control)"
        )
    wanted = [c for c in _V2_CONTROLLERS if c in available]
    enable = " ".join(f"+{c}" for c in wanted)
    parent = os.path.join(own, f"fulmen-{zygote_pid}")
    _sweep_stale(own)
    try:
        _enable_controllers(own, enable)
        os.makedirs(parent, exist_ok=True)
        _write(os.path.join(parent, "cgroup.subtree_control"), enable)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rmdir(parent)
        hint = (
            "the worker's cgroup keeps processes that cannot be moved into a leaf (cgroup v2 "
            "allows controllers only for a cgroup without processes of its own): start the "
            "worker in a cgroup of its own with delegation, e.g. systemd's Delegate=yes, or "
            "a container's private cgroup namespace with /sys/fs/cgroup writable"
            if exc.errno == errno.EBUSY
            else f"{exc.strerror} (the worker's cgroup is not delegated to it)"
        )
        return None, f"cannot create run cgroups beneath {own}: {hint}"
    return CgroupTree(2, {"": parent}), ""


def _enable_controllers(own: str, enable: str) -> None:
    """Enable ``enable`` for the children of ``own``, the worker's delegated cgroup.

    cgroup v2 refuses while ``own`` holds processes of its own (the worker's, ours), unless
    it is the hierarchy's root. The delegation pattern (systemd's ``Delegate=yes``, a
    container's private cgroup namespace) is to move them into a leaf of their own,
    ``own/fulmen-supervisor``: still beneath ``own``, so every limit on it holds. Tried a few
    times, as a process may fork meanwhile.
    """
    control = os.path.join(own, "cgroup.subtree_control")
    for _ in range(5):
        try:
            _write(control, enable)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
        leaf = os.path.join(own, "fulmen-supervisor")
        os.makedirs(leaf, exist_ok=True)
        with open(os.path.join(own, "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                _write(os.path.join(leaf, "cgroup.procs"), pid)
    _write(control, enable)


def _discover_v1(
    membership: Mapping[str, str], mounts: Mapping[str, str], zygote_pid: int
) -> tuple[CgroupTree | None, str]:
    missing = [c for c in _V1_REQUIRED if c not in membership or c not in mounts]
    if missing:
        return None, f"no cgroup controller for {', '.join(missing)} is mounted"
    parents: dict[str, str] = {}
    try:
        for controller in _V1_REQUIRED + _V1_OPTIONAL:
            if controller not in membership or controller not in mounts:
                continue
            own = mounts[controller] + membership[controller]
            _sweep_stale(own)
            parent = os.path.join(own, f"fulmen-{zygote_pid}")
            os.makedirs(parent, exist_ok=True)
            parents[controller] = parent
    except OSError as exc:
        for made in parents.values():
            with contextlib.suppress(OSError):
                os.rmdir(made)
        return None, (
            f"cannot create run cgroups beneath {own}: {exc.strerror} (the worker's cgroup "
            "is not delegated to it; in a container, mount /sys/fs/cgroup read-write)"
        )
    return CgroupTree(1, parents), ""


def _sweep_stale(own: str) -> None:
    """Remove what a zygote that died without cleaning up (SIGKILL) left beneath ``own``:
    its ``fulmen-<pid>`` directory and its runs' (empty by now) cgroups. Best effort."""
    try:
        names = os.listdir(own)
    except OSError:
        return
    for name in names:
        if not name.startswith("fulmen-") or not name[7:].isdigit():
            continue
        if os.path.exists(f"/proc/{name[7:]}"):
            continue  # a live zygote's (or a pid reused since: it is left alone)
        parent = os.path.join(own, name)
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if entry.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.rmdir(entry.path)
            os.rmdir(parent)


def _parse_membership(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` → {controller: path}; the v2 entry under ``""``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path.rstrip("/") if path != "/" else ""
    return found


def _cgroup_mounts() -> dict[str, str]:
    """Mount points of cgroup hierarchies: {controller: path}, v2 under ``""``."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split(" ", 2)
            mount_point = left.split(" ")[4]
            if fstype == "cgroup2":
                found.setdefault("", mount_point)
            elif fstype == "cgroup":
                for option in options.split()[-1].split(","):
                    if option in _V1_REQUIRED + _V1_OPTIONAL:
                        found.setdefault(option, mount_point)
    return found


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as a shell's > does
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write_value(path: str, text: str, optional: bool) -> None:
    if optional:
        _write_if_present(path, text)
    else:
        _write(path, text)


def _write_if_present(path: str, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _write(path, text)
