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
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import fulmen
from fulmen.errors import SandboxError
from fulmen.sandbox.frames import DEFAULT_MAX_FRAME_BYTES, HEADER_BYTES, encode
from fulmen.sandbox.handle import RunHandle
from fulmen.sandbox.isolation import (
    LEVELS,
    ZYGOTE_ENVIRONMENT,
    IsolationReport,
    Policy,
    assess,
)
from fulmen.sandbox.limits import Limits, planned_rlimits
from fulmen.sandbox.link import Link
from fulmen.sandbox.network import NETWORK_POLICIES, parse_allow, stop_pasta
from fulmen.sandbox.wire import RunHeader

__all__ = ["DEFAULT_PRELOAD", "LEVELS", "RunHandle", "Zygote"]

log = logging.getLogger(__name__)

DEFAULT_PRELOAD: Final = ("json", "logging", "datetime", "decimal", "re")

_ENTRY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_BOOTSTRAP: Final = """\
import json, sys
config = json.loads(sys.argv[1])
sys.path[:0] = [p for p in config["fulmen_path"] if p not in sys.path]
sys.path.extend(p for p in config["extra_sys_path"] if p not in sys.path)
from fulmen.sandbox.zygote import main
main(config)
"""
_PROBE_LIMITS: Final = Limits(
    timeout_s=20, memory_mb=256, cpu_s=20, nofile=64, nproc=64, fsize_mb=8
)


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
        read_only: Sequence[str],
        warm_up: Sequence[str],
        python: str,
        base_dir: str | None,
        unprivileged_uid: int,
        use_landlock: bool,
        max_frame_bytes: int,
        start_timeout_s: float,
        sandboxing: Mapping[str, Any],
    ) -> None:
        """Use :meth:`start`; this only records settings."""
        self._use_landlock = use_landlock
        self._sandboxing = dict(sandboxing)
        self._preload = list(preload)
        self._warm_up = list(warm_up)
        self._extra_sys_path = [os.path.abspath(p) for p in extra_sys_path]
        self._read_only = [os.path.realpath(p) for p in read_only]
        self._python = python
        self._own_base = base_dir is None
        self._base = base_dir or tempfile.mkdtemp(prefix="fulmen-sandbox-")
        self._uid = unprivileged_uid
        self._max_frame = max_frame_bytes
        self._start_timeout = start_timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._link: Link | None = None
        self._restart_lock = asyncio.Lock()
        self._next_id = 0
        self._closed = False
        self._isolation: IsolationReport | None = None
        #: Runs get a directory under ``_base`` (no namespaces: the child makes it there).
        self._host_run_dirs = True
        self.preload_errors: Mapping[str, str] = {}
        """Modules that failed to preload, with the error; the zygote runs without them."""

    @classmethod
    async def start(
        cls,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        extra_sys_path: Sequence[str] = (),
        *,
        read_only: Sequence[str] = (),
        warm_up: Sequence[str] = (),
        python: str | None = None,
        base_dir: str | None = None,
        unprivileged_uid: int = 65534,
        use_landlock: bool = True,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        minimum_level: str | None = None,
        start_timeout_s: float = 30.0,
        network: str = "outside",
        allow: Sequence[str] = (),
        use_namespaces: bool = True,
        use_cgroups: bool = True,
        use_seccomp: bool = True,
        uid_base: int = 200_000,
        disk_mb: int = 256,
    ) -> Zygote:
        """Start a zygote, probe the isolation it gives, and return it ready to run.

        Args:
            preload: modules to import once in the zygote (names that fail are reported in
                :attr:`preload_errors`).
            extra_sys_path: directories appended to the zygote's ``sys.path`` (and readable
                by children).
            read_only: directories children may read and execute from, beside the
                interpreter's and the system's (the worker's repository of JavaScript packages:
                Node.js runs inside the child). Each must exist when the zygote starts; in a
                namespaced sandbox it is bound read-only into the runs' root at its own path.
            warm_up: ``"module:function"`` names called with no arguments several times
                in the zygote and once in every spare child before it is handed a run. A
                warm-up runs the entry's code path on dummy data: in the zygote that fills
                lazy caches and specialises the bytecode it walks, and in a spare it takes
                the copy-on-write page faults that the run would otherwise pay for (about
                2 ms of a one-step workflow here). It must not
                emit, write files or keep state a run could see; the spare holds no secret
                yet. Failures are reported with :attr:`preload_errors`.
            python: the interpreter to use; the worker's own by default.
            base_dir: where run directories are made; a fresh temporary one by default.
            unprivileged_uid: the uid children switch to when the worker is root and this
                uid can read the interpreter.
            use_landlock: apply Landlock where the kernel offers it (turn off only to
                diagnose a job that Landlock breaks; the report then says so).
            max_frame_bytes: largest payload or event accepted.
            minimum_level: refuse to start below this isolation level (see ``LEVELS``;
                ``"best"`` or None for whatever the host gives).
            start_timeout_s: how long the zygote may take to preload.
            network: ``outside`` (the default: the outside world, not the host's loopback),
                ``none`` or ``host`` (``network.py``).
            allow: loopback ``host:port`` pairs runs may reach all the same (``outside``).
            use_namespaces, use_cgroups, use_seccomp: turn a mechanism off (to diagnose a
                job it breaks, or to see what a lower level gives; the report says so).
            uid_base: with namespaces, the host uid of the first concurrent run; each run
                alive at once gets its own from here up.
            disk_mb: with namespaces, the size of each run's own tmpfs: its directory and
                ``/tmp`` (its pages count against the run's memory limit too).

        Raises:
            SandboxError: the zygote did not start, the probe run failed, or the isolation
                level is below ``minimum_level``.
        """
        if minimum_level == "best":
            minimum_level = None
        if minimum_level is not None and minimum_level not in LEVELS:
            raise SandboxError(
                f"Unknown isolation level {minimum_level!r}; "
                f"one of {', '.join(LEVELS[1:])} or best.",
                code="invalid_isolation",
            )
        if network not in NETWORK_POLICIES:
            raise SandboxError(
                f"Unknown network policy {network!r}; one of {', '.join(NETWORK_POLICIES)}.",
                code="invalid_network",
            )
        try:
            allow_ports = parse_allow(allow)
        except ValueError as exc:
            raise SandboxError(f"{exc}.", code="invalid_network") from None
        zygote = cls(
            preload=preload,
            extra_sys_path=extra_sys_path,
            read_only=read_only,
            warm_up=warm_up,
            python=python or sys.executable,
            base_dir=base_dir,
            unprivileged_uid=unprivileged_uid,
            use_landlock=use_landlock,
            max_frame_bytes=max_frame_bytes,
            start_timeout_s=start_timeout_s,
            sandboxing={
                "namespaces": use_namespaces,
                "cgroups": use_cgroups,
                "seccomp": use_seccomp,
                "network": network,
                "allow_ports": allow_ports,
                "uid_base": uid_base,
                "disk_mb": disk_mb,
            },
        )
        try:
            await zygote._launch()
            report = zygote.isolation
            if minimum_level is not None and LEVELS.index(report.level) < LEVELS.index(
                minimum_level
            ):
                missing = "; ".join(f"{m.name}: {m.detail}" for m in report.missing(minimum_level))
                raise SandboxError(
                    f"The sandbox gives isolation {report.level}, below the {minimum_level} "
                    f"asked for. Missing: {missing}. See the README's 'Security model'.",
                    code="isolation_unavailable",
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
        self,
        entry: str,
        payload: dict[str, Any],
        limits: Limits | None = None,
        *,
        duplex: bool = False,
        warm: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Fork a child that calls ``entry(payload, emit)``; restarts a dead zygote first.

        Args:
            entry: ``"package.module:function"``, importable in the zygote.
            payload: a JSON object; only the child ever sees it.
            limits: resource limits; none but the defaults when omitted.
            duplex: call ``entry(payload, emit, receive)`` instead, where ``receive()``
                blocks for the next message the worker sends with :meth:`RunHandle.send`
                and returns ``None`` after :meth:`RunHandle.close_input`. For long-lived
                children that serve requests (the script runner's smart workers); like
                the payload, messages go from the worker straight to the child.
            warm: what the spares forked from now on warm up with (the warm-ups' argument;
                never secret: see ``RunHeader.warm``). A run without it makes them plain
                again, and a spare warmed for other runs is not used for it.

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
        return self._start_run(link, entry, frame, limits or Limits(), duplex=duplex, warm=warm)

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
        stop_pasta(self._pasta_pid_file())  # the zygote stops its own, unless it was killed
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

    async def _live_link(self) -> Link:
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
        self,
        link: Link,
        entry: str,
        payload_frame: bytes,
        limits: Limits,
        *,
        duplex: bool = False,
        warm: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        self._next_id += 1
        run_id = self._next_id
        header = RunHeader(
            id=run_id,
            entry=entry,
            run_dir=os.path.join(self._base, f"run-{run_id}") if self._host_run_dirs else "",
            limits=limits,
            duplex=duplex,
            warm=warm,
        )
        return link.start_run(header, payload_frame, self._max_frame)

    def _pasta_pid_file(self) -> str:
        return os.path.join(self._base, ".pasta.pid")  # where zygote.py has pasta write it

    async def _launch(self) -> None:
        stop_pasta(self._pasta_pid_file())  # a zygote that died (SIGKILL) left it running
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "control_fd": theirs.fileno(),
            "fulmen_path": [str(Path(fulmen.__file__).resolve().parent.parent)],
            "extra_sys_path": self._extra_sys_path,
            "read_only": self._read_only,
            "preload": self._preload,
            "warm_up": self._warm_up,
            "unprivileged_uid": self._uid,
            "landlock": self._use_landlock,
            "max_frame_bytes": self._max_frame,
            "root_dir": self._root_dir(),
            **self._sandboxing,
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
        link = Link(loop, process, ours, self._tasks)
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
        if ready["threads"] != 1:
            # A fork copies only the forking thread; locks other threads held stay locked in
            # every child. Whatever started them should not be preloaded.
            log.warning("preloading left %s threads in the sandbox zygote", ready["threads"])
        policy = Policy.from_record(ready["policy"])
        self._host_run_dirs = not policy.namespaces
        if policy.uid is not None:
            os.chmod(self._base, 0o711)  # let the child's uid reach its own directory
        self._isolation = await self._verify(link, policy, str(ready.get("cgroup_check", "")))
        log.info("%s", self._isolation.describe())

    def _root_dir(self) -> str:
        """An empty directory where each namespaced child mounts its new root."""
        path = os.path.join(self._base, ".root")
        os.makedirs(path, 0o755, exist_ok=True)
        return path

    async def _verify(self, link: Link, policy: Policy, cgroup_check: str) -> IsolationReport:
        """Run the probe entry and believe only what it observed (the zygote's cgroup check
        is its own observation, made before it announced itself)."""
        outside = os.path.join(self._base, "probe-outside")
        with open(outside, "w") as f:
            f.write("not for the child\n")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tcp = socket.socket()
        name = f"fulmen-probe-{secrets.token_hex(8)}"
        try:
            listener.bind("\0" + name)
            listener.listen(1)
            tcp.bind(("127.0.0.1", 0))
            tcp.listen(1)
            payload = {
                "worker_pid": os.getpid(),
                "outside_file": outside,
                "outside_dir": self._base,
                "abstract_socket": name,
                "worker_port": tcp.getsockname()[1],
            }
            frame = encode({"payload": payload})
            handle = self._start_run(link, "fulmen.sandbox.probe:verify", frame, _PROBE_LIMITS)
            findings = [event async for event in handle]
        finally:
            listener.close()
            tcp.close()
            os.unlink(outside)
        result = handle.exit
        if result.kind != "ok" or len(findings) != 1:
            raise SandboxError(
                f"The sandbox probe run failed: {result.message}. {result.output}".strip()
            )
        expected: dict[str, list[int | None] | None] = {
            name: list(value) for name, value in planned_rlimits(_PROBE_LIMITS, 0).items()
        }
        if policy.cgroup:
            expected.pop("as")  # the memory cgroup bounds the run instead (limits.py)
        else:
            expected["as"] = None
        return assess(policy, {**findings[0], "cgroup_check": cgroup_check}, expected)
