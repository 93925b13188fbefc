"""Linux namespaces for a run: its own users, processes, filesystem view, IPC and host name.

Issue 12 ("Sandbox, level 3"). Each spare child enters fresh namespaces *before* its run
arrives, so the run's critical path pays nothing for them:

1. Once per zygote, a holder process builds the runs' root in a mount namespace of its own
   (:func:`start_template`, :func:`build_root`): a tmpfs holding the interpreter, the
   libraries and the system files bound read-only at their usual paths and a minimal
   ``/dev``; then ``pivot_root`` and the old root detached. Nothing else of the host exists
   there: no data directory, no keys, no other run's files. Root's 0700 directories (pyenv
   lives in ``/root`` here) are reached because the holder is the host's root; nothing on
   the host changes.
2. The zygote forks each spare into a new pid namespace
   (:func:`new_pid_namespace_for_children`): the spare is the run's pid 1, so when it dies
   the kernel kills every process the run started, ``setsid`` and double forks included.
3. The spare, still the host's root, copies the template's mount namespace and mounts a
   ``/proc`` of its own pid namespace (:func:`enter_root`), joins the zygote's shared
   network namespace (``setns`` into a namespace owned by the host's user namespace needs
   the capabilities it is about to lose), and unshares ``USER | MNT | IPC | UTS | CGROUP``.
   The copy's mounts are locked by the kernel: the run can neither undo nor move them.
4. The zygote, still privileged in the host's user namespace, writes the spare's id maps:
   uid and gid 0 inside are one unprivileged host id that no other live run uses
   (:func:`write_id_maps`, :func:`reserve_uid_range`). A process cannot map ids other than
   its own from inside.
5. The spare becomes uid 0 *of its namespace*, i.e. the unprivileged host id, and keeps
   the namespace's capabilities only until its run has mounted its own quota-bound tmpfs.

Everything here is a thin wrapper over ``unshare(2)``, ``setns(2)``, ``mount(2)`` and
``pivot_root(2)``; the order is decided by ``child.py`` and ``zygote.py``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fulmen.sandbox import libc
from fulmen.sandbox.paths import outermost

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWNET",
    "RUN_NAMESPACES",
    "SANDBOX_RUN_DIR",
    "RootLayout",
    "build_root",
    "mount",
    "mount_run_dir",
    "setns",
    "unshare",
    "write_id_maps",
]

CLONE_NEWNS: Final = 0x00020000
CLONE_NEWCGROUP: Final = 0x02000000
CLONE_NEWUTS: Final = 0x04000000
CLONE_NEWIPC: Final = 0x08000000
CLONE_NEWUSER: Final = 0x10000000
CLONE_NEWPID: Final = 0x20000000
CLONE_NEWNET: Final = 0x40000000

RUN_NAMESPACES: Final = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
"""What every spare unshares; its pid namespace comes from the zygote's fork, and its
network namespace is the zygote's shared one, joined first."""

SANDBOX_RUN_DIR: Final = "/job"
"""The run's directory inside its root: HOME, TMPDIR and the working directory. One tmpfs,
sized by the run's disk quota; ``/tmp`` is the same tmpfs (so they share that quota) unless
something the interpreter needs lives under the host's ``/tmp`` (a virtual environment or a
checkout there): then ``/tmp`` shows that, read-only, and jobs write to ``$TMPDIR``."""

MS_RDONLY: Final = 0x1
MS_NOSUID: Final = 0x2
MS_NODEV: Final = 0x4
MS_NOEXEC: Final = 0x8
MS_REMOUNT: Final = 0x20
MS_BIND: Final = 0x1000
MS_REC: Final = 0x4000
MS_PRIVATE: Final = 0x40000
MNT_DETACH: Final = 0x2

_HIDDEN: Final = ("/usr/local/etc",)
"""Directories beneath the bound ones that the runs' root shows empty."""

_SYS_PIVOT_ROOT: Final = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)

_libc = ctypes.CDLL(None, use_errno=True)
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """``unshare(2)``."""
    _check(_unshare(flags), "unshare")


def setns(fd: int, kind: int) -> None:
    """``setns(2)`` into the namespace ``fd`` refers to."""
    _check(_setns(fd, kind), "setns")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """``mount(2)``; the error names the target."""
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


def write_id_maps(pid: int, host_id: int) -> None:
    """Map uid and gid 0 of ``pid``'s new user namespace to ``host_id``, nothing else.

    Runs in the zygote, which holds CAP_SETUID and CAP_SETGID in the parent namespace.
    ``setgroups`` is denied first: the run must never drop into a group to escape a
    ``---rwx`` permission, and an unprivileged map requires it anyway.
    """
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"0 {host_id} 1\n"),
        ("gid_map", f"0 {host_id} 1\n"),
    ):
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class RootLayout:
    """What a run's root holds, decided once in the zygote."""

    read_only: Sequence[str]
    """Absolute real paths (files or directories) bound read-only at the same path."""
    symlinks: Sequence[tuple[str, str]]
    """``(path, target)``: symbolic links recreated as they are on the host (``/bin``...)."""
    devices: Sequence[str]
    """Character devices bound read-write under ``/dev`` (``/dev/null``, ``/dev/urandom``...)."""

    @property
    def tmp_is_free(self) -> bool:
        """Nothing is bound beneath ``/tmp``, so the run's tmpfs may be mounted there."""
        return not any(p == "/tmp" or p.startswith("/tmp/") for p in self.read_only)

    @classmethod
    def for_host(cls, paths: Sequence[str], devices: Sequence[str]) -> RootLayout:
        """Split ``paths`` into binds and top-level symlinks (``/lib -> usr/lib``)."""
        binds: dict[str, None] = {}
        links: list[tuple[str, str]] = []
        for path in paths:
            if not os.path.lexists(path):
                continue
            parent = os.path.realpath(os.path.dirname(path))
            located = os.path.join(parent, os.path.basename(path))
            if os.path.islink(located):
                links.append((located, os.readlink(located)))
            real = os.path.realpath(located)
            if os.path.exists(real):
                binds.setdefault(real)
        kept = outermost(list(binds))
        return cls(tuple(kept), tuple(links), tuple(d for d in devices if os.path.exists(d)))


def build_root(layout: RootLayout, new_root: str) -> None:
    """Make ``new_root`` the process's ``/`` (see the module docstring, step 4).

    Call as the host's root, after ``unshare(CLONE_NEWNS)`` alone: a process in a new user
    namespace cannot create files on a tmpfs while its own uid is unmapped, nor walk root's
    0700 directories once it is mapped. The user namespace entered afterwards gets a copy
    of this tree whose mounts it can neither undo nor move (the kernel locks them).
    """
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("fulmen-root", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path in layout.read_only:
        _bind_read_only(path, new_root + path)
    for hidden in _HIDDEN:
        if os.path.isdir(new_root + hidden):
            # Inside a bound tree, but the host's configuration, not a library: npm and
            # other tools keep registry tokens there.
            mount(
                "fulmen-hidden",
                new_root + hidden,
                "tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV,
                "size=4k",
            )
    for path, target in layout.symlinks:
        where = new_root + path
        if not os.path.lexists(where):
            os.makedirs(os.path.dirname(where), 0o755, exist_ok=True)
            os.symlink(target, where)
    dev = new_root + "/dev"
    os.makedirs(dev, 0o755, exist_ok=True)
    for device in layout.devices:
        target = new_root + device
        with open(target, "w"):
            pass
        mount(device, target, None, MS_BIND)
    os.symlink("/proc/self/fd", dev + "/fd")
    for number, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", f"{dev}/{name}")
    os.makedirs(new_root + "/proc", 0o555, exist_ok=True)  # each run mounts its own
    os.makedirs(new_root + SANDBOX_RUN_DIR, 0o755, exist_ok=True)
    os.makedirs(new_root + "/tmp", 0o755, exist_ok=True)
    old = new_root + "/.old-root"
    os.mkdir(old, 0o700)
    libc.syscall(_SYS_PIVOT_ROOT, ctypes.c_char_p(new_root.encode()), ctypes.c_char_p(old.encode()))
    os.chdir("/")
    _check(_umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    # Nothing more is added to the root: read-only from here on.
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def enter_root(template_fd: int) -> None:
    """In a spare, still the host's root and pid 1 of its pid namespace: a copy of the
    template's tree (``setns`` then ``unshare``), and a procfs of our own pid namespace on
    ``/proc``, so that ``/proc`` lists the run's processes and nothing else. Mounted here,
    by the host's root, because the pid namespace belongs to the host's user namespace."""
    setns(template_fd, CLONE_NEWNS)
    unshare(CLONE_NEWNS)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def start_template(layout: RootLayout, new_root: str) -> tuple[int, int]:
    """Build the runs' root once, in a mount namespace of its own kept by a child.

    Returns ``(holder pid, descriptor of its mount namespace)``: each spare copies that
    namespace (:func:`enter_root`), which costs a fraction of building the tree again.
    The holder dies with the zygote (PDEATHSIG).
    """
    read_end, write_end = os.pipe()
    holder = os.fork()
    if holder == 0:  # pragma: no cover - the holder only keeps the namespace alive
        status = 1
        try:
            os.close(read_end)
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            # Whatever the worker's umask (fulmen up sets 077), the root's directories must
            # be walkable by the runs' uids.
            os.umask(0o022)
            build_root(layout, new_root)
            status = 0
        except BaseException as exc:
            os.write(write_end, f"{exc}".encode()[:500])
        finally:
            os.close(write_end)
            while status == 0:
                signal.pause()
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        failure = pipe.read().decode(errors="replace")
    if failure:
        os.waitpid(holder, 0)
        raise OSError(f"cannot build the runs' root: {failure}")
    fd = os.open(f"/proc/{holder}/ns/mnt", os.O_RDONLY)  # inherited by every spare
    return holder, fd


def new_pid_namespace_for_children(own_pid_ns: int | None) -> None:
    """Make the next fork pid 1 of a new pid namespace; with ``own_pid_ns`` (a descriptor of
    our own), go back to forking into ours (``unshare`` refuses a second new one otherwise)."""
    if own_pid_ns is None:
        unshare(CLONE_NEWPID)
    else:
        setns(own_pid_ns, CLONE_NEWPID)


def mount_run_dir(size_mb: int, also_tmp: bool) -> None:
    """The run's own writable space: a tmpfs at :data:`SANDBOX_RUN_DIR` of ``size_mb``, and
    at ``/tmp`` too when ``also_tmp``.

    Mounted by uid 0 of the run's namespace, so it belongs to the run; its pages are charged
    to the run's memory cgroup, and filling it ends in ``ENOSPC``.
    """
    mount(
        "fulmen-run",
        SANDBOX_RUN_DIR,
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"mode=0700,uid=0,gid=0,size={size_mb}m",
    )
    if also_tmp:
        mount(SANDBOX_RUN_DIR, "/tmp", None, MS_BIND)


def _bind_read_only(source: str, target: str) -> None:
    is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    if is_dir:
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        with open(target, "w"):
            pass
    mount(source, target, None, MS_BIND | MS_REC)
    # A remount in a user namespace must keep the flags the host locked on the source
    # mount (nodev, noexec...), or the kernel refuses it.
    locked = _locked_flags(os.statvfs(source).f_flag)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | locked)


def _locked_flags(statvfs_flags: int) -> int:
    flags = 0
    for st, ms in ((os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC)):
        if statvfs_flags & st:
            flags |= ms
    return flags | MS_NODEV


UID_RANGE: Final = 4096
"""Host ids one zygote hands out: its runs alive at once never exceed this."""
_RANGE_LOCKS: Final = ("/run/fulmen/uid-ranges", "/tmp/.fulmen-uid-ranges")


def reserve_uid_range(first: int, count: int = 256) -> tuple[int, int]:
    """A range of :data:`UID_RANGE` host ids that no other zygote on this host holds.

    Every zygote (a worker's, the runner's, ``fulmen run``'s) would otherwise start at the
    same base, and two runs of two workers would share a host uid. The range is held by an
    ``flock`` on a file named after it, for as long as the returned descriptor stays open;
    the kernel releases it when the zygote dies, however it dies.

    Returns ``(base, fd)``. Raises OSError when every one of ``count`` ranges is taken.
    """
    import fcntl  # only the zygote needs it

    for directory in _RANGE_LOCKS:
        try:
            os.makedirs(directory, 0o700, exist_ok=True)
        except OSError:
            continue
        for index in range(count):
            fd = os.open(f"{directory}/{index}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return first + index * UID_RANGE, fd
        raise OSError(f"all {count} host uid ranges in {directory} are held by other sandboxes")
    raise OSError("no directory for host uid range locks could be made")
