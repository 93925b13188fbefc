"""The zygote: a clean interpreter that preloads, then forks one child per run.

Started by the worker (``fulmen.sandbox.process``) as a fresh interpreter with a scrubbed
environment, so that a forked child inherits nothing secret: not the worker's variables, not
its tokens, not its memory (DESIGN.md, "Security model"). It preloads what jobs will import,
freezes the garbage collector's view of those objects, and loops: receive a run header with
the child's socket and output attached, hand them to a child, report the pid; when a child
exits, reap it and report.

The fork happens *before* the run arrives: one forked **spare** always waits (two with
namespaces; see ``child.spare``), and a new one is forked right after one is handed a run,
while that run starts on the other CPU. Forking copies the page tables of everything preloaded
(about 1-2 ms with the runtime's imports), so this takes it off each run's latency.

With namespaces (issue 12, ``namespaces.py``) each spare is forked as pid 1 of a pid
namespace of its own, and admitted once it has unshared the rest: the zygote maps its ids
to a host uid of its slot (``slots.py``) and moves it to a fresh cgroup, from this loop, so
that a spare's set-up never holds up a run that arrives meanwhile.

It is single-threaded (forking a threaded process is unsafe) and never reads a run socket:
payloads, which carry credentials, go from the worker to the child directly.

*Resource handling*: the zygote owns its children. It reaps each one through a pidfd, which
wakes the loop without signal handlers (a handler would be inherited by every child), and
kills the child's process group just before reaping it, while the zombie still pins the
pid, so nothing can be reused under our feet. When the control socket closes (the worker
exited or closed the sandbox), it kills every child and exits.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fulmen.sandbox import capabilities, child, landlock, libc, paths, pools, probe
from fulmen.sandbox.cgroups import CgroupTree, RunCgroup
from fulmen.sandbox.confinement import Confinement
from fulmen.sandbox.frames import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode
from fulmen.sandbox.isolation import Policy, decide_policy
from fulmen.sandbox.namespaces import (
    new_pid_namespace_for_children,
    write_id_maps,
)
from fulmen.sandbox.slots import Slots
from fulmen.sandbox.wire import RunHeader

__all__ = ["main"]

_CONTROL_BUFFER = 1 << 16
#: A plain int: ``socket.MSG_TRUNC | socket.MSG_CTRUNC`` is an IntFlag operation, Python code
#: run for every control message.
_TRUNCATED = int(socket.MSG_TRUNC | socket.MSG_CTRUNC)
#: A descriptor epoll reports that nothing listens to any more.
_GONE = object()
#: What ``pools.fill_free_blocks`` allocated: kept for the zygote's life.
_ballast: list[object] = []
#: One call more than CPython 3.11 needs to specialise a function (its warm-up delay is 8).
_QUICKENING_CALLS = 9


@dataclass(slots=True)
class _Spare:
    pid: int
    sock: socket.socket  # the zygote's end; the spare waits on the other
    slot: int | None = None
    """Its host uid is ``uid_base + slot`` (namespaces only)."""
    cgroup: RunCgroup | None = None
    oom_fd: int | None = None
    """v1: readable once the run's cgroup had an OOM kill."""
    admitted: bool = True
    """Its ids are mapped and it is in its cgroup (namespaces: once it has unshared)."""
    watched: bool = False
    """Its socket is in the selector, waiting for it to say it has unshared."""
    hint: Mapping[str, Any] | None = None
    """The warm hint it was forked with: its warm-ups may have started helpers (Node.js),
    which a run that brings no hint must not inherit (they count against its limits), and
    run code (a Python environment's imports) that only a run whose hint's ``exact`` part
    is the same may inherit (see :func:`_serves`)."""

    @property
    def warm(self) -> bool:
        return self.hint is not None


class _Zygote:
    def __init__(
        self, control: socket.socket, settings: child.Settings, cgroup_tree: CgroupTree | None
    ) -> None:
        self._control = control
        self._settings = settings
        self._decoder = FrameDecoder(_CONTROL_BUFFER)
        # epoll itself, not ``selectors``: its Python layers ran a dozen functions per run
        # here, where every function called is pages written (and copied) after each fork.
        self._epoll = select.epoll()
        self._listened: dict[int, Any] = {}  # fd -> what its readiness means
        self._pids: dict[int, int] = {}  # run id -> pid, until reaped
        self._runs: dict[int, int] = {}  # pid -> run id, for children that have a run
        self._children: dict[int, _Spare] = {}  # pid -> its slot and cgroup, until reaped
        self._oom: set[int] = set()  # pids whose run hit its memory limit
        #: Pids whose exit the worker does not need (``release``): its run has concluded.
        self._unreported: set[int] = set()
        self._slots = Slots(cgroup_tree)
        self._spares: deque[_Spare] = deque()
        # With namespaces a spare takes a few milliseconds to make (a pid namespace, a copy
        # of the runs' mount namespace, its cgroup): two stay ready, so that a run arriving
        # right after another finds one that has finished.
        self._want_spares = 2 if settings.policy.namespaces else 1
        self._worker_gone = False
        self._last_limits: tuple[int | None, int] | None = None
        #: The latest run's warm hint (``RunHeader.warm``): what new spares warm up with.
        self._warm: dict[str, Any] | None = None
        self._own_pid_ns = (
            os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            if settings.policy.namespaces
            else None
        )
        self._fork = _forker()

    def serve(self) -> None:
        """Loop until the worker closes the control socket."""
        self._listen(self._control.fileno(), None)
        self._refill()
        while not self._worker_gone:
            # What each ready descriptor means, read before any is handled (as ``selectors``
            # does): handling one may close another and reuse its number for a new one.
            ready = [(fd, self._listened.get(fd, _GONE)) for fd, _ in self._epoll.poll()]
            for fd, data in ready:
                if data is _GONE:
                    continue
                if data is None:
                    self._worker_gone = not self._on_control()
                elif isinstance(data, tuple) and data[0] == "oom":
                    self._on_oom(data[1])
                elif isinstance(data, tuple):
                    self._on_spare_unshared(data[1])
                else:
                    self._reap(fd, data)
        self._shutdown()

    def _listen(self, fd: int, data: Any) -> None:
        self._epoll.register(fd, select.EPOLLIN)
        self._listened[fd] = data

    def _stop_listening(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._listened[fd]

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
        if flags & _TRUNCATED:
            raise RuntimeError("control message truncated")
        for record in self._decoder.feed(data):
            if record["t"] == "run":
                self._start(RunHeader.from_record(record), fds)
                fds = []
            elif record["t"] == "kill":
                self._kill(int(record["id"]))
            elif record["t"] == "release":
                self._kill(int(record["id"]), report=False)
        for fd in fds:  # descriptors that came with something other than a run
            os.close(fd)
        return True

    def _fork_spare(self, *, plain: bool = False) -> _Spare | None:
        """A new spare, warmed with the latest hint unless ``plain``."""
        policy = self._settings.policy
        warm = None if plain else self._warm
        slot, cgroup = None, None
        if policy.namespaces:
            try:
                taken = self._slots.take()
            except OSError:
                return None
            if taken is None:
                return None
            slot, cgroup = taken
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = self._fork_into_new_pid_namespace() if slot is not None else self._fork()
        except OSError:
            ours.close()
            theirs.close()
            if slot is not None:
                self._slots.give_back(slot)
            return None
        if pid == 0:  # the spare closes every descriptor of ours first (child.spare)
            host_id = None if slot is None else policy.uid_base + slot
            child.spare(theirs.fileno(), self._settings, host_id, warm)
        theirs.close()
        self._listen(os.pidfd_open(pid), pid)
        spare = _Spare(pid, ours, slot, cgroup, admitted=slot is None, hint=warm)
        self._children[pid] = spare
        if cgroup is not None:
            self._watch(spare)
        if not spare.admitted:
            # Admitted when it says it has unshared, without holding up this loop meanwhile
            # (its first steps after the fork take a millisecond or two).
            self._listen(ours.fileno(), ("spare", pid))
            spare.watched = True
        return spare

    def _watch(self, spare: _Spare) -> None:
        """Set the spare's cgroup up before its run arrives, as far as can be known: the
        limits the last run had (most runs share theirs; ``_start`` rewrites them when not)
        and, on v1, the OOM watch."""
        assert spare.cgroup is not None
        try:
            if self._last_limits is not None:
                spare.cgroup.set_limits(self._last_limits)
            spare.oom_fd = spare.cgroup.watch_oom()
        except OSError:
            return  # _start writes the limits; a cgroup that refuses them fails the run there
        if spare.oom_fd is not None:
            self._listen(spare.oom_fd, ("oom", spare.pid))

    def _fork_into_new_pid_namespace(self) -> int:
        """Fork a child that is pid 1 of a pid namespace of its own; we stay where we are."""
        new_pid_namespace_for_children(None)
        try:
            pid = self._fork()
        except OSError:
            new_pid_namespace_for_children(self._own_pid_ns)
            raise
        if pid:
            new_pid_namespace_for_children(self._own_pid_ns)
        return pid

    def _on_spare_unshared(self, pid: int) -> None:
        spare = self._children.get(pid)
        if spare is not None and not spare.admitted and not self._admit(spare):
            # Killed: it will get no run (its reaping gives its slot back).
            if spare in self._spares:
                self._spares.remove(spare)
            spare.sock.close()

    def _admit(self, spare: _Spare) -> bool:
        """The spare has unshared (or will: this blocks until it says so): map its ids, move
        it to its cgroup, let it go on. A spare that cannot be admitted is killed (and
        reaped like any child, which gives its slot back)."""
        self._unwatch(spare)
        spare.admitted = self._handshake(spare)
        if not spare.admitted:
            _kill_run(spare.pid)
        return spare.admitted

    def _handshake(self, spare: _Spare) -> bool:
        assert spare.slot is not None
        host_id = self._settings.policy.uid_base + spare.slot
        try:
            if spare.sock.recv(16) != b"u":
                return False
            write_id_maps(spare.pid, host_id)
            if spare.cgroup is not None:
                spare.cgroup.attach(spare.pid)
            spare.sock.send(b"g")
        except OSError:
            return False
        return True

    def close_cgroups(self) -> None:
        """At exit: the runs' processes die with their pid namespaces, asynchronously; wait
        a little for their cgroups to empty, then remove them."""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and self._slots.leftover():
            time.sleep(0.005)
        self._slots.remove_cgroups()

    def _on_oom(self, pid: int) -> None:
        """v1: the OOM killer took a process of this run; end all of it, as v2's oom.group."""
        spare = self._children.get(pid)
        if spare is not None and spare.oom_fd is not None:
            self._stop_listening(spare.oom_fd)
            os.close(spare.oom_fd)
            spare.oom_fd = None
        self._oom.add(pid)
        _kill_run(pid)

    def _start(self, header: RunHeader, fds: list[int]) -> None:
        """Hand the run to the spare (forking one now if there is none), then fork the next."""
        try:
            if len(fds) != 2:
                self._send(
                    {"t": "failed", "id": header.id, "message": "no run socket and output attached"}
                )
                return
            self._warm = dict(header.warm) if header.warm is not None else None
            spare = self._take_spare()
            if spare is not None and not spare.admitted and not self._admit(spare):
                spare.sock.close()
                spare = None
            wanted = (header.limits.memory_mb, header.limits.pids)
            if spare is not None and spare.warm and spare.cgroup is not None:
                try:
                    spare.cgroup.set_limits(wanted)
                except OSError:
                    # What its warm-ups started (an earlier run's Node and adaptors) uses more
                    # than this run may: the kernel refuses the limit. A plain spare instead.
                    self._discard(spare)
                    spare = self._fork_spare(plain=True)
                    if spare is not None and not spare.admitted and not self._admit(spare):
                        spare.sock.close()
                        spare = None
            if spare is None:
                self._send({"t": "failed", "id": header.id, "message": "fork failed"})
                return
            try:
                if spare.cgroup is not None:
                    spare.cgroup.set_limits(wanted)
                self._last_limits = wanted
                socket.send_fds(spare.sock, [encode(header.to_record())], fds)
            except OSError as exc:  # the spare died meanwhile; its reaping is silent
                _kill_run(spare.pid)
                self._send({"t": "failed", "id": header.id, "message": f"spare lost: {exc}"})
                return
            finally:
                spare.sock.close()
            self._pids[header.id] = spare.pid
            self._runs[spare.pid] = header.id
            if header.duplex or not self._settings.policy.namespaces:
                # Without namespaces the worker kills the run's group by this pid should we
                # die first; a duplex run is a process that lives on, whose pid its owner shows
                # (the runner's API). A one-shot run with namespaces needs none (its pid
                # namespace dies with its init, which dies with us): the record would only
                # wake the worker.
                self._send({"t": "started", "id": header.id, "pid": spare.pid})
        finally:
            for fd in fds:
                os.close(fd)
        self._refill()

    def _take_spare(self) -> _Spare | None:
        """A spare for the run whose hint is ``self._warm``: one warmed with that very hint,
        else a plain one, else a new one. Spares warmed for other runs than this one are
        ended: the runs to come are like this one (new spares are warmed with its hint)."""
        for spare in [s for s in self._spares if not _serves(s.hint, self._warm)]:
            self._spares.remove(spare)
            self._discard(spare)
        chosen = next((s for s in self._spares if s.warm and s.hint == self._warm), None)
        if chosen is None and self._spares:
            chosen = self._spares[0]
        if chosen is None:
            return self._fork_spare()
        self._spares.remove(chosen)
        return chosen

    def _discard(self, spare: _Spare) -> None:
        """End a spare that will get no run (it is reaped as any child is)."""
        self._unwatch(spare)
        _kill_run(spare.pid)
        spare.sock.close()

    def _unwatch(self, spare: _Spare) -> None:
        """Stop waiting for the spare to say it has unshared (before its socket closes: a
        closed socket left in the selector breaks it for the next one on that descriptor)."""
        if spare.watched:
            self._stop_listening(spare.sock.fileno())
            spare.watched = False

    def _refill(self) -> None:
        while len(self._spares) < self._want_spares:
            spare = self._fork_spare()
            if spare is None:
                return  # the next run forks one when it arrives
            self._spares.append(spare)

    def _kill(self, run_id: int, *, report: bool = True) -> None:
        """Kill the run's group; ``report=False``: and send no ``exited`` for it (the worker's
        handle has concluded: the report would only wake the worker)."""
        pid = self._pids.get(run_id)
        if pid is not None:
            _kill_run(pid)
            if not report:
                self._unreported.add(pid)

    def _reap(self, pidfd: Any, pid: int) -> None:
        self._stop_listening(pidfd)
        # The child is a zombie now; its group may still hold processes the job started.
        _kill_run(pid)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        oom = self._release(pid)
        run_id = self._runs.pop(pid, None)
        if run_id is None:  # a spare that died before it got a run
            for spare in [s for s in self._spares if s.pid == pid]:
                self._spares.remove(spare)
                self._unwatch(spare)
                spare.sock.close()
            return
        del self._pids[run_id]
        if pid in self._unreported:
            self._unreported.discard(pid)
            return
        record: dict[str, Any] = {
            "t": "exited",
            "id": run_id,
            "maxrss": usage.ru_maxrss,
            "cpu": usage.ru_utime + usage.ru_stime,
        }
        if oom:
            record["oom"] = True
        if os.WIFSIGNALED(status):
            record["signal"] = os.WTERMSIG(status)
        else:
            record["code"] = os.waitstatus_to_exitcode(status)
        self._send(record)

    def _release(self, pid: int) -> bool:
        """A reaped child's slot, cgroup and OOM watch; whether its run hit its memory limit."""
        spare = self._children.pop(pid, None)
        oom = pid in self._oom
        self._oom.discard(pid)
        if spare is None:
            return oom
        self._unwatch(spare)
        if spare.oom_fd is not None:
            self._stop_listening(spare.oom_fd)
            os.close(spare.oom_fd)
        if spare.cgroup is not None:
            oom = oom or spare.cgroup.oom_kills() > spare.cgroup.oom_kills_before
        if spare.slot is not None:
            self._slots.give_back(spare.slot)
        return oom

    def _shutdown(self) -> None:
        pids = list(self._pids.values()) + [spare.pid for spare in self._spares]
        for pid in pids:
            _kill_run(pid)
        for pid in pids:
            os.waitpid(pid, 0)
            self._release(pid)


def _forker() -> Callable[[], int]:
    """How the zygote forks: libc's bare fork when it has one thread, else ``os.fork``.

    Checked once, after preloading and warm-ups (which might have started a thread), with
    the kernel's count (``/proc/self/task``: threads of C libraries too), since nothing in
    the loop starts one. See ``libc.fork`` for what the bare fork skips and why that is
    safe only for a single-threaded parent.
    """
    if len(os.listdir("/proc/self/task")) != 1:
        return os.fork
    return _bare_fork


def _bare_fork() -> int:
    pid = libc.fork()
    if pid == 0:
        # What random's own at-fork hook does: no two runs draw the same numbers.
        random.seed()
    return pid


def _kill_run(pid: int) -> None:
    """SIGKILL the run's process group, and the child itself in case it has not yet called
    setsid (then it has no descendants either). With namespaces the child is pid 1 of
    the run's pid namespace, and its death ends every other process of the run too."""
    # try/except rather than contextlib.suppress: this runs twice per run in the zygote,
    # where every function called is pages written (and copied) after each fork.
    for kill in (os.killpg, os.kill):
        try:  # noqa: SIM105
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _preload(names: Sequence[str]) -> dict[str, str]:
    errors = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a broken adaptor must not stop the sandbox
            errors[name] = f"{type(exc).__name__}: {exc}"
    return errors


def _serves(had: Mapping[str, Any] | None, wants: Mapping[str, Any] | None) -> bool:
    """Whether a spare warmed with ``had`` may take a run whose hint is ``wants``: a plain
    spare takes any run; a warmed one only a run with a hint, and the same ``exact`` part
    (what its warm-ups ran in the process, which no other run may inherit)."""
    if had is None:
        return True
    return wants is not None and had.get("exact") == wants.get("exact")


def _warm_ups(names: Sequence[str], errors: dict[str, str]) -> tuple[child.WarmUp, ...]:
    """Resolve and run each warm-up here (with no hint); those that fail are reported, not
    kept.

    Each runs :data:`_QUICKENING_CALLS` times: CPython 3.11 rewrites a function's bytecode
    into its specialised form at the eighth call, writing into the code object, and counts
    the calls before that in the code object too. Done here, that write lands once in the
    zygote; done in each child, it copies the page of every code object the run calls.
    """
    kept = []
    for name in names:
        try:
            function = child.load_callable(name)
            for _ in range(_QUICKENING_CALLS):
                function(None)
        except BaseException as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
        else:
            kept.append(function)
    return tuple(kept)


def _grants(extra: Sequence[str]) -> tuple[list[tuple[paths.OpenPath, int]], list[str]]:
    """Open every path children may use, with its Landlock rights; also the Python ones.

    ``extra``: the trees children read beside the interpreter's (``Zygote.start``'s
    ``read_only``); they are not among the Python paths the probe checks the run's uid can
    read, since a namespaced run sees them through a bind mount, not the host's directories."""
    python = paths.python_paths()
    system = [p for p in paths.SYSTEM_READ_ONLY if os.path.exists(p)]
    read_only = paths.outermost(python + list(extra) + system)
    grants = [(p, landlock.READ_ONLY) for p in paths.open_paths(read_only)]
    grants += [
        (p, landlock.READ_WRITE_FILE) for p in paths.open_paths(list(paths.DEVICES_READ_WRITE))
    ]
    return grants, python


def _ruleset(
    policy: Policy, grants: Sequence[tuple[paths.OpenPath, int]]
) -> landlock.Ruleset | None:
    if not policy.landlock_abi:
        return None
    return landlock.Ruleset(policy.landlock_abi, [(p.fd, rights, p.is_dir) for p, rights in grants])


def _spare_fds(
    grants: Sequence[tuple[paths.OpenPath, int]], confinement: Confinement
) -> tuple[int, ...]:
    """What a spare keeps of our descriptors (``child.Settings.spare_fds``): the paths it is
    granted and the namespaces it joins. Not the control socket, the epoll set, the runs'
    pidfds and eventfds, the uid range's lock: ``child._let_go_of_the_zygote`` says why."""
    fds = {path.fd for path, _ in grants}
    fds.update(fd for fd in (confinement.root_fd, confinement.netns_fd) if fd is not None)
    return tuple(sorted(fds))


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

    Keys: ``control_fd``, ``preload``, ``unprivileged_uid``, ``landlock``, ``max_frame_bytes``,
    and for issue 12's namespaces ``namespaces``, ``cgroups``, ``seccomp`` (each may be
    turned off), ``network`` and ``allow_ports``, ``uid_base``, ``root_dir`` (the bootstrap
    has already set ``sys.path``).
    """
    control = socket.socket(fileno=int(config["control_fd"]))
    control.setblocking(True)
    preload_errors = _preload(config["preload"])
    warm_ups = _warm_ups(config.get("warm_up", ()), preload_errors)
    extra = [str(p) for p in config.get("read_only", ())]
    grants, python = _grants(extra)
    facts = probe.host_facts(int(config["unprivileged_uid"]), python)
    policy = decide_policy(
        facts,
        use_landlock=bool(config["landlock"]),
        use_namespaces=bool(config.get("namespaces", True)),
    )
    confinement = Confinement.set_up(policy, [*python, *extra], config)
    policy = confinement.policy
    # After pasta has started: it needs the capabilities this takes away from what we exec.
    _drop_what_children_never_need(policy)
    max_frame = int(config.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES))
    child.prepare_zygote(policy)
    # Everything imported so far is shared copy-on-write with every child; keep the
    # collector from touching (and so copying) those pages in each child.
    gc.collect()
    _ballast.extend(pools.fill_free_blocks())  # children allocate into pages of their own
    gc.freeze()
    settings = child.Settings(
        policy,
        grants,
        os.getpid(),
        max_frame,
        warm_ups,
        seccomp_program=confinement.seccomp_program,
        disk_mb=int(config.get("disk_mb", 256)),
        tmp_is_free=confinement.tmp_is_free,
        root_fd=confinement.root_fd,
        netns_fd=confinement.netns_fd,
        ruleset=_ruleset(policy, grants),
        null_fd=os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC),
        spare_fds=_spare_fds(grants, confinement),
    )
    zygote = _Zygote(control, settings, confinement.cgroups)
    zygote.announce(
        {
            "t": "ready",
            "pid": os.getpid(),
            "preload_errors": preload_errors,
            "policy": policy.to_record(),
            "landlock_abi": facts.landlock_abi,
            "threads": threading.active_count(),
            "cgroup_check": confinement.cgroup_check,
        }
    )
    try:
        zygote.serve()
    finally:
        zygote.close_cgroups()
        confinement.close()
