"""Everything that happens in a run's process, between the zygote's fork and ``os._exit``.

The zygote forks each child *before* its run arrives (a spare, see ``zygote.py``), so that
the fork is off the run's critical path. :func:`spare` waits for the run, then hardens the
process and calls the entry. It never returns (returning would resume the zygote's loop in a
second process) and always ends in ``os._exit``, which skips atexit handlers and finalizers
inherited from the zygote: they belong to the zygote, and some would touch its sockets.

Hardening comes first, in an order the kernel dictates (each step says why it is where it
is); the payload is read only after the last step, so no credential is ever in memory that
job code could reach through a not-yet-closed door. Then the entry runs with an ``emit``
that frames events onto the run socket (and, for a duplex run, a ``receive`` that reads the
worker's further messages from it), and the child ends with one ``exit`` record.
"""

from __future__ import annotations

import importlib
import os
import resource
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from fulmen.errors import SandboxProtocolError
from fulmen.sandbox import capabilities, landlock, libc, namespaces, network, seccomp
from fulmen.sandbox.frames import FrameDecoder, encode
from fulmen.sandbox.isolation import Policy
from fulmen.sandbox.limits import address_space_in_use, apply_rlimits
from fulmen.sandbox.namespaces import SANDBOX_RUN_DIR
from fulmen.sandbox.paths import OpenPath
from fulmen.sandbox.wire import EXIT_ERROR, EXIT_OK, EXIT_OOM, EXIT_SETUP, RunHeader

__all__ = ["RUN_SOCKET_FD", "Channel", "Settings", "point_at_run_dir", "prepare_zygote", "spare"]

RUN_SOCKET_FD = 3
"""Where the run socket ends up; 0-2 are /dev/null and the output memfd."""

_MAX_MESSAGE = 4000

Entry = Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], None]
#: A warm-up: called with the zygote's latest warm hint (``RunHeader.warm``; None in the zygote
#: and when there is none). It may start helper processes for the run to come (Node.js); it
#: returns their pids and the descriptors the run keeps to them, ``((pid, ...), (fd, ...))``,
#: or None. Helpers are only started in a spare confined in advance (namespaces): they must be
#: inside everything the run is.
WarmUp = Callable[[Mapping[str, Any] | None], tuple[tuple[int, ...], tuple[int, ...]] | None]


@dataclass(frozen=True, slots=True)
class Settings:
    """What every child of one zygote shares, decided once at the zygote's start."""

    policy: Policy
    grants: Sequence[tuple[OpenPath, int]]
    """Pre-opened paths and the Landlock rights to grant on each (``ruleset`` holds them)."""
    zygote_pid: int
    max_frame_bytes: int
    warm_ups: Sequence[WarmUp] = ()
    """Called in each spare before it waits for a run (see ``Zygote.start``)."""
    seccomp_program: bytes = b""
    """The compiled filter, or empty for none."""
    disk_mb: int = 256
    """Size of each run's tmpfs (its directory and ``/tmp``), with namespaces."""
    tmp_is_free: bool = True
    """The run's tmpfs is mounted at ``/tmp`` too (``RootLayout.tmp_is_free``)."""
    root_fd: int | None = None
    """The template mount namespace holding the runs' root (``namespaces.RootTemplate``)."""
    netns_fd: int | None = None
    """The zygote's shared network namespace, joined before the user namespace."""
    ruleset: landlock.Ruleset | None = None
    """Landlock's rules for ``grants`` (None: no Landlock, ``policy.landlock_abi`` is 0)."""
    null_fd: int | None = None
    """``/dev/null``, open for writing: a spare's stdout and stderr until its run's output."""
    spare_fds: tuple[int, ...] = ()
    """The zygote's descriptors a spare keeps (the grants', ``root_fd``, ``netns_fd``);
    :func:`_let_go_of_the_zygote` closes every other."""


class Channel:
    """The child's end of the run socket: events in call order, then one ``exit`` record.

    A lock makes :meth:`emit` safe from several threads (a job's worker threads, a logging
    handler). The socket is blocking, so a job faster than the worker is slowed to its pace,
    not buffered without bound. Reading (the payload, then a duplex run's messages) keeps
    one decoder, so a message that arrives in the same read as the payload is not lost;
    another lock lets one thread read while others emit.
    """

    __slots__ = ("_decoder", "_lock", "_read_lock", "_received", "_sock")

    def __init__(self, sock: socket.socket, max_frame_bytes: int | None = None) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._decoder = FrameDecoder() if max_frame_bytes is None else FrameDecoder(max_frame_bytes)
        self._received: deque[dict[str, Any]] = deque()

    def emit(self, event: dict[str, Any]) -> None:
        """The ``emit`` an entry gets."""
        if not isinstance(event, dict):
            raise TypeError(f"emit() takes a dict, not {type(event).__name__}")
        data = encode({"event": event})
        with self._lock:
            self._sock.sendall(data)

    def receive_payload(self, max_frame_bytes: int | None = None) -> dict[str, Any]:
        """Read the one ``payload`` record the worker wrote (before any emit).

        ``max_frame_bytes`` is accepted for callers that made the channel without one.
        """
        if max_frame_bytes is not None:
            self._decoder = FrameDecoder(max_frame_bytes)
        record = self._next_record()
        if record is None:
            raise EOFError("the worker closed the run socket before sending the payload")
        payload = record["payload"]
        if not isinstance(payload, dict):
            raise TypeError(f"payload is a {type(payload).__name__}, not an object")
        return payload

    def receive(self) -> dict[str, Any] | None:
        """The ``receive`` a duplex entry gets: block for the worker's next message.

        Returns ``None`` once the worker has closed its input (``RunHandle.close_input``,
        or the worker went away); every later call returns ``None`` too.

        Raises:
            SandboxProtocolError: the worker sent something that is not a framed message.
        """
        with self._read_lock:
            record = self._next_record()
        if record is None:
            return None
        message = record.get("message")
        if not isinstance(message, dict):
            raise SandboxProtocolError(f"expected a message record, got keys {sorted(record)}")
        return message

    def _next_record(self) -> dict[str, Any] | None:
        while not self._received:
            try:
                data = self._sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self._decoder.close()
                return None
            self._received.extend(self._decoder.feed(data))
        return self._received.popleft()

    def error(self, stage: str, exc: BaseException) -> None:
        """Best effort: say why the entry is about to fail."""
        try:
            data = encode(_error_record(stage, exc))
            with self._lock:
                self._sock.sendall(data)
        except BaseException:
            pass

    def close(self, code: int) -> None:
        """Send the final ``exit`` record and shut the socket; nothing can follow it.

        The lock is never released: another thread still emitting blocks until ``_exit``.
        The worker concludes the run at the ``exit`` record (``handle.py``) and reads nothing
        after it; shutting the socket down (not just closing it) also ends the stream for a
        process the job left holding a copy of the descriptor.
        """
        self._lock.acquire()
        try:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self._sock.sendall(encode({"exit": code, "maxrss": usage.ru_maxrss}))
            self._sock.shutdown(socket.SHUT_RDWR)
        except BaseException:
            pass


def spare(
    control_fd: int,
    settings: Settings,
    host_id: int | None = None,
    warm: Mapping[str, Any] | None = None,
) -> NoReturn:
    """Be a spare: detach, wait for a run on ``control_fd``, run it, exit; never returns.

    Args:
        control_fd: this spare's end of its socket to the zygote; a run arrives on it as a
            header with the run socket attached, or end of file if the spare is not needed.
        settings: the zygote's decisions for all its children.
        host_id: with namespaces, the unprivileged host uid and gid this run is.
        warm: the zygote's latest warm hint, for the warm-ups; ignored without namespaces,
            where nothing is confined before the run arrives.
    """
    helpers: list[int] = []
    kept: list[int] = []
    try:
        try:
            _let_go_of_the_zygote(control_fd, settings)
            _detach(settings)
            if settings.policy.namespaces:
                assert host_id is not None
                _enter_namespaces(control_fd, settings, host_id)
                _confine_in_advance(settings, control_fd)
            else:
                warm = None
            for warm_up in settings.warm_ups:
                started = warm_up(warm)
                if started is not None:
                    helpers.extend(started[0])
                    kept.extend(started[1])
            received = _receive_run(control_fd)
        except BaseException:
            os._exit(EXIT_SETUP)  # no run yet, nobody to tell: the zygote makes another
        if received is None:
            os._exit(EXIT_OK)
        header, fd, out = received
        try:
            if settings.policy.namespaces:
                # All else was done before the run arrived (_confine_in_advance).
                fd = _keep_only_own_descriptors(fd, out, kept)
                apply_rlimits(header.limits, 0, address_space=not settings.policy.cgroup)
                for pid in helpers:  # started before the run: held to its limits too
                    apply_rlimits(header.limits, 0, address_space=False, pid=pid)
            else:
                baseline, fd = _confine(header, fd, out, settings)
                _limit(header, settings, baseline)
        except BaseException as exc:
            _write_error(fd, "setup", exc)
            os._exit(EXIT_SETUP)
        # Family and type given, or the socket module asks the kernel for them (3 calls).
        run_socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
        channel = Channel(run_socket, settings.max_frame_bytes)
        code = _run_entry(header, channel)
        channel.close(code)
        os._exit(code)
    finally:
        os._exit(EXIT_SETUP)  # unreachable unless os._exit itself failed


def _let_go_of_the_zygote(control_fd: int, settings: Settings) -> None:
    """First of all: keep of the zygote's descriptors only those a spare uses.

    A fork inherits every descriptor: the zygote's epoll set and control socket, the pidfds
    and OOM eventfds of the runs in flight, the lock on its host uid range, the other spares'
    sockets, its stderr (the worker's). A spare would keep them until its run arrives, and its
    warm-ups run code the run chose before that (a Python environment's warm-up imports the
    run's pinned packages). With them, that code could take the zygote's descriptors out of
    its epoll set (the zygote would hear nothing more), write another run's OOM eventfd (the
    zygote would end that run as out of memory), unlock the uid range (another zygote could
    take it, and its runs share host ids with ours) or write into the worker's log. So they
    are closed here, by number: the zygote's objects that held them in this process are
    never used again (this function's caller never returns to the zygote's code). Closing
    the zygote's end of this spare's socket also makes the zygote's death an end of file
    here (before it holds a run, a pid-namespace init has no parent it could check), and
    closing the worker's control socket lets the worker see the zygote's death however many
    spares outlive it for a moment.
    """
    if settings.null_fd is not None:
        os.dup2(settings.null_fd, 1)
        os.dup2(settings.null_fd, 2)
    _close_all_but(control_fd, *settings.spare_fds)


def _close_all_but(*kept: int) -> None:
    """Close every descriptor but 0-2 and ``kept``: one close_range(2) per gap in CPython,
    when the kernel has it (5.9+)."""
    low = 0
    for keep in sorted({0, 1, 2, *kept}):
        if keep > low:
            os.closerange(low, keep)
        low = keep + 1
    os.closerange(low, _max_fd())


def _detach(settings: Settings) -> None:
    """What does not depend on the run, done while the spare waits."""
    # A session of our own: the worker kills the run with killpg(pid), which must reach
    # anything the job spawns and nothing else; setsid also drops the zygote's terminal.
    os.setsid()
    if settings.policy.namespaces:
        # Our parent, the zygote, lies outside our pid namespace: getppid() is 0 here.
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        _die_with(settings.zygote_pid)
    # Before Landlock (it requires no-new-privs without CAP_SYS_ADMIN) and before the job
    # can execve anything: setuid binaries and file capabilities then grant nothing.
    libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)


def _enter_namespaces(control_fd: int, settings: Settings, host_id: int) -> None:
    """Steps 2-5 of ``namespaces.py``, in the spare, which is already pid 1 of a new pid
    namespace (the zygote forked it there): its death ends every process of the run."""
    # Root's supplementary groups would follow us into the namespace, and once setgroups
    # is denied there they could not be dropped: drop them while we still may.
    os.setgroups([])
    assert settings.root_fd is not None
    namespaces.enter_root(settings.root_fd)
    if settings.netns_fd is not None:
        namespaces.setns(settings.netns_fd, namespaces.CLONE_NEWNET)
        os.close(settings.netns_fd)
    os.close(settings.root_fd)
    # The run's host ids before its user namespace: the namespace then belongs to them, and
    # what the kernel counts per user inside it (inotify instances, queued signals,
    # processes) is charged to this run's uid, not to the host's root for every run.
    os.setresgid(host_id, host_id, host_id)
    os.setresuid(host_id, host_id, host_id)
    own_network = settings.netns_fd is None and settings.policy.network == "none"
    namespaces.unshare(namespaces.RUN_NAMESPACES | (namespaces.CLONE_NEWNET if own_network else 0))
    os.write(control_fd, b"u")  # the zygote writes our id maps and moves us to our cgroup
    if os.read(control_fd, 16) != b"g":
        os._exit(EXIT_SETUP)
    # Now the unprivileged host id: uid 0 of the namespace. Its capabilities there stay
    # until the run has mounted its tmpfs (``_limit`` clears them).
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)  # the uid change cleared it
    if own_network:
        network.bring_loopback_up()
    # The zygote has moved us to the run's cgroup by now: make that the root of what the
    # run sees of cgroups.
    namespaces.unshare(namespaces.CLONE_NEWCGROUP)
    capabilities.drop_bounding_set(settings.policy.cap_last)
    capabilities.lock_securebits()


def _receive_run(control_fd: int) -> tuple[RunHeader, int, int] | None:
    """The run's header, its socket and its output memfd (both made by the worker)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, control_fd) as control:
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 2)
    if not data:
        return None
    (record,) = FrameDecoder().feed(data)
    fd, out = fds
    return RunHeader.from_record(record), fd, out


def _confine_in_advance(settings: Settings, control_fd: int) -> None:
    """With namespaces, everything that does not depend on the run, before it arrives: the
    run directory is always the same tmpfs, so Landlock, privileges and seccomp can all be
    in force while the spare waits (and while it warms up). Only the run's descriptors and
    its rlimits are left for when it arrives."""
    namespaces.mount_run_dir(settings.disk_mb, also_tmp=settings.tmp_is_free)
    if settings.ruleset is not None:
        _restrict_filesystem(settings.ruleset, SANDBOX_RUN_DIR)
    # Landlock holds the grants now: their handles, opened in the host's mounts, are not
    # left to what the warm-ups run.
    _close_all_but(control_fd)
    _enter_run_dir(SANDBOX_RUN_DIR, environment=False)
    _harden(settings)


def _confine(header: RunHeader, fd: int, out: int, settings: Settings) -> tuple[int, int]:
    """Without namespaces: run directory, Landlock, descriptors.

    Returns the address space in use before any limit, and the run socket's new descriptor.
    """
    policy = settings.policy
    baseline = 0 if header.limits.memory_mb is None else address_space_in_use()
    os.mkdir(header.run_dir, 0o700)
    if policy.uid is not None:
        os.chown(header.run_dir, policy.uid, policy.uid)
    if settings.ruleset is not None:
        # Before the descriptor shuffle below, which closes the zygote's O_PATH handles.
        _restrict_filesystem(settings.ruleset, header.run_dir)
    return baseline, _keep_only_own_descriptors(fd, out)


def _limit(header: RunHeader, settings: Settings, baseline: int) -> None:
    """Without namespaces: working directory, environment, rlimits, then :func:`_harden`."""
    _enter_run_dir(header.run_dir)
    apply_rlimits(header.limits, baseline, address_space=not settings.policy.cgroup)
    _harden(settings)


def _enter_run_dir(run_dir: str, *, environment: bool = True) -> None:
    """``environment``: point the run's environment at ``run_dir`` too (the zygote has,
    with namespaces: :func:`prepare_zygote`)."""
    os.chdir(run_dir)
    os.umask(0o077)
    if environment:
        point_at_run_dir(run_dir)


def point_at_run_dir(run_dir: str) -> None:
    """Where a run's home and temporary files go; ``__pycache__`` is read-only for it."""
    os.environ["HOME"] = os.environ["TMPDIR"] = run_dir
    tempfile: Any = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = run_dir  # it caches the directory it found in the zygote
    sys.dont_write_bytecode = True  # __pycache__ is read-only here; do not even try


def prepare_zygote(policy: Policy) -> None:
    """What every child would do alike, done once in the zygote before it forks any.

    With namespaces every run's directory is :data:`SANDBOX_RUN_DIR`, so its environment
    can be set here; in each child, the first writes to ``os.environ`` and the modules'
    dictionaries cost some 30 copy-on-write faults (~100 us). The zygote itself runs nothing
    that reads them.
    """
    if policy.namespaces:
        point_at_run_dir(SANDBOX_RUN_DIR)


def _harden(settings: Settings) -> None:
    """Privileges, dumpability, parent-death signal, seccomp: the last of the set-up."""
    policy = settings.policy
    _drop_privileges(policy)
    # After any uid change, which resets dumpable to the suid_dumpable sysctl. Non-dumpable
    # also makes ptrace and /proc/<pid>/mem of this process refuse other same-uid processes,
    # i.e. another run.
    libc.prctl(libc.PR_SET_DUMPABLE, 0)
    if policy.namespaces:
        # The zygote is outside our pid namespace (getppid() is 0): no reparenting to check.
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        _die_with(settings.zygote_pid)  # again: a uid change clears the parent-death signal
    if settings.seccomp_program:
        seccomp.install(settings.seccomp_program)  # last: it refuses what set-up needed


def _die_with(zygote_pid: int) -> None:
    # SIGKILL when the zygote dies, so a run cannot outlive the supervisor that would kill it
    # at its timeout. If the zygote already died (we were reparented), stop now.
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(EXIT_SETUP)


def _restrict_filesystem(ruleset: landlock.Ruleset, run_dir: str) -> None:
    """The grants every child has (``ruleset``, made in the zygote), and its own two."""
    own = os.open(run_dir, os.O_PATH | os.O_CLOEXEC)
    # /proc/self resolves to this process's own /proc/<pid>: Python and libraries read
    # /proc/self/{status,fd,maps}; the worker's /proc/<pid> stays out of reach.
    proc_self = os.open("/proc/self", os.O_PATH | os.O_CLOEXEC)
    try:
        # Everything the ABI handles beneath the run dir only; /proc/self to read.
        ruleset.restrict_self([(own, -1, True), (proc_self, landlock.READ_ONLY, True)])
    finally:
        os.close(own)
        os.close(proc_self)


def _keep_only_own_descriptors(fd: int, out: int, kept: Sequence[int] = ()) -> int:
    """stdin from /dev/null, stdout and stderr to the output memfd, the run socket on 3.

    Everything else the zygote had open (its control socket, pidfds of other runs, O_PATH
    handles) is closed, so a job cannot talk to the zygote or wait on another run; but the
    ``kept`` descriptors to the warm-ups' helpers, which lie above the run socket.
    """
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for temporary in (null, out):
        if temporary > 2:
            os.close(temporary)
    if fd != RUN_SOCKET_FD:
        os.dup2(fd, RUN_SOCKET_FD, inheritable=False)
        os.close(fd)
    _close_all_but(RUN_SOCKET_FD, *kept)
    return RUN_SOCKET_FD


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _drop_privileges(policy: Policy) -> None:
    # The bounding and ambient sets are already empty and the securebits locked: the zygote
    # did it once for all its children. What is left is per process.
    if policy.namespaces:
        capabilities.clear_sets()
    elif policy.uid is not None:
        uid = policy.uid
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # clears the capability sets too; made sure below
        capabilities.clear_sets()
    elif policy.drop_capabilities:
        capabilities.clear_sets()


def _run_entry(header: RunHeader, channel: Channel) -> int:
    """Read the payload, call the entry; the exit code says how it went."""
    stage = "payload"
    try:
        payload = channel.receive_payload()
        stage = "load"
        function: Callable[..., Any] = load(header.entry)
        stage = "entry"
        if header.duplex:
            function(payload, channel.emit, channel.receive)
        else:
            function(payload, channel.emit)
    except MemoryError:
        # No error record: building one needs memory we just ran out of.
        return EXIT_OOM
    except SystemExit as exc:
        return _system_exit_code(exc)
    except BaseException as exc:
        channel.error(stage, exc)
        return EXIT_ERROR
    finally:
        _flush_standard_streams()
    return EXIT_OK


def load(entry: str) -> Entry:
    """The entry function named ``"package.module:function"``."""
    function: Entry = load_callable(entry)
    return function


def load_callable(name: str) -> Callable[..., Any]:
    """Whatever callable ``"package.module:qualified.name"`` names (entries, warm-ups)."""
    module_name, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        target = getattr(target, attribute)
    if not callable(target):
        raise TypeError(f"sandbox entry {name!r} is not callable")
    function: Callable[..., Any] = target
    return function


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    return 1  # as the interpreter does for sys.exit("message")


def _error_record(stage: str, exc: BaseException) -> dict[str, Any]:
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    return {
        "error": {"type": type(exc).__qualname__, "message": message[:_MAX_MESSAGE], "stage": stage}
    }


def _write_error(fd: int, stage: str, exc: BaseException) -> None:
    """Best effort, on a raw descriptor: the setup failed before there was a channel."""
    try:
        data = encode(_error_record(stage, exc))
        while data:
            data = data[os.write(fd, data) :]
    except BaseException:
        pass


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass
