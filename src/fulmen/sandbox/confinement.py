"""What a zygote sets up once, for all its runs: the runs' root, cgroups, seccomp, network.

Issue 12. Each part as far as the host allows it: what could not be had is written into
the policy with the reason, for the report (``isolation.assess``), and the zygote runs
with the rest. Everything here runs in the zygote before it forks its first spare, and
before it gives up the capabilities (pasta, started here, needs them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from fulmen.sandbox import cgroups, network, paths, seccomp
from fulmen.sandbox.cgroups import CgroupTree, RunCgroup
from fulmen.sandbox.isolation import Policy
from fulmen.sandbox.namespaces import RootLayout, reserve_uid_range, start_template

__all__ = ["Confinement"]


@dataclass(slots=True)
class Confinement:
    """The zygote's shared set-up, and the policy as it turned out."""

    policy: Policy
    cgroups: CgroupTree | None = None
    network: network.Network | None = None
    seccomp_program: bytes = b""
    cgroup_check: str = ""
    """``"held"``, or what went wrong when the cgroups were tried (``_check_cgroup``)."""
    root_fd: int | None = None
    """The template mount namespace (``namespaces.start_template``)."""
    tmp_is_free: bool = True

    @property
    def netns_fd(self) -> int | None:
        return self.network.fd if self.network is not None else None

    @classmethod
    def set_up(cls, policy: Policy, readable: Sequence[str], config: dict[str, Any]) -> Confinement:
        """For a namespaced policy: the runs' root, then cgroups, seccomp and the network.
        A policy without namespaces comes back as it is. ``readable``: the trees bound
        read-only into the runs' root beside the system's (the interpreter's, and any the
        zygote was given)."""
        if not policy.namespaces:
            return cls(policy)
        layout = RootLayout.for_host(
            list(readable) + [p for p in paths.SYSTEM_READ_ONLY if not p.startswith("/dev/")],
            [p for p in paths.SYSTEM_READ_ONLY if p.startswith("/dev/")]
            + list(paths.DEVICES_READ_WRITE),
        )
        try:
            _, root_fd = start_template(layout, str(config["root_dir"]))
        except OSError as exc:
            return cls(replace(policy, namespaces=False, namespaces_reason=str(exc)))
        policy, tree, shared, program = _settle_namespaced(policy, config)
        return cls(
            policy,
            tree,
            shared,
            program,
            _check_cgroup(tree) if tree is not None else "",
            root_fd,
            layout.tmp_is_free,
        )

    def close(self) -> None:
        """At the zygote's exit, once the runs' cgroups are gone (``Zygote.close_cgroups``)."""
        if self.network is not None:
            self.network.close()
        if self.cgroups is not None:
            self.cgroups.remove()


def _settle_namespaced(
    policy: Policy, config: dict[str, Any]
) -> tuple[Policy, CgroupTree | None, network.Network | None, bytes]:
    """Cgroups, seccomp and the network, each as far as the host allows; the reasons of
    those that are off go into the policy, for the report."""
    tree, cgroup_reason = (
        cgroups.discover(os.getpid())
        if config.get("cgroups", True)
        else (None, "turned off by configuration")
    )
    program, seccomp_reason = b"", "turned off by configuration"
    if config.get("seccomp", True):
        try:
            program, seccomp_reason = seccomp.compile_filter(), ""
        except (OSError, RuntimeError) as exc:
            seccomp_reason = f"cannot build the filter: {exc}"
    policy_name = str(config.get("network", "outside"))
    try:
        shared = network.start(
            policy_name,
            [int(p) for p in config.get("allow_ports", ())],
            os.path.join(os.path.dirname(str(config["root_dir"])), ".pasta.pid"),  # process.py
        )
        network_detail = shared.detail
    except OSError as exc:
        shared, network_detail = None, str(exc)
        policy_name = "host"
    uid_base, _held = reserve_uid_range(int(config.get("uid_base", 200_000)))  # held till exit
    return (
        replace(
            policy,
            uid_base=uid_base,
            cgroup=tree.describe() if tree is not None else "",
            cgroup_reason=cgroup_reason,
            seccomp=bool(program),
            seccomp_reason=seccomp_reason,
            network=policy_name,
            network_detail=network_detail,
        ),
        tree,
        shared,
        program,
    )


def _check_cgroup(tree: CgroupTree) -> str:
    """Try the run cgroups for real once: a child in one with ``pids.max`` 1 must fail to
    fork, and the memory limit must read back as written. ``"held"`` or what went wrong."""
    try:
        cgroup = tree.run_cgroup("check")
    except OSError as exc:
        return f"cannot create a run cgroup: {exc.strerror}"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the throwaway fork
        try:
            os.close(write_end)
            os.read(read_end, 1)
            try:
                os.fork()
                os._exit(1)
            except OSError:
                os._exit(0)  # the pids limit held
        finally:
            os._exit(2)
    os.close(read_end)
    try:
        cgroup.attach(pid)
        cgroup.limit(64, 1)
        os.write(write_end, b"x")
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            return "a process in a run cgroup with pids.max 1 could still fork"
        limit = _read_limit(cgroup)
        if limit != 64 * 1024 * 1024:
            return f"the memory limit reads back as {limit}, not {64 * 1024 * 1024}"
        return "held"
    except OSError as exc:
        return f"cannot use a run cgroup: {exc.strerror}"
    finally:
        os.close(write_end)
        with contextlib.suppress(OSError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for _ in range(100):
            if cgroup.remove():
                break
            time.sleep(0.001)


def _read_limit(cgroup: RunCgroup) -> int:
    name = "memory.max" if cgroup.version == 2 else "memory.limit_in_bytes"
    directory = cgroup.dirs["" if cgroup.version == 2 else "memory"]
    with open(f"{directory}/{name}") as f:
        return int(f.read())
