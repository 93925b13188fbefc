"""Per-run resource limits, and applying them as rlimits inside the child.

rlimits are the one resource control that works everywhere (stack-research §3.1: also as root
without CAP_SYS_ADMIN, also under Docker's seccomp profile); cgroups would be stronger but are
rarely delegated. What each limit does when hit:

- ``RLIMIT_AS`` (memory): allocations fail, Python raises MemoryError, the child's wrapper exits
  with ``EXIT_OOM``. It bounds *virtual* size, so the child's own baseline (the zygote's
  inherited mappings) is added on top, or a small limit would fail before the job starts.
- ``RLIMIT_CPU``: SIGXCPU at the soft limit, SIGKILL one second later at the hard limit.
- ``RLIMIT_FSIZE``: Python ignores SIGXFSZ, so a write past it fails with ``EFBIG``.
- ``RLIMIT_NOFILE``, ``RLIMIT_NPROC``: open() and fork() fail. The kernel never applies NPROC
  to uid 0, so it only counts when the child runs under a separate uid.
- ``RLIMIT_CORE = 0``: a crashing job must not write its memory, which holds its
  credentials, to disk.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass
from typing import Final

from fulmen.errors import SandboxError

__all__ = ["RESOURCES", "Limits", "address_space_in_use", "apply_rlimits", "planned_rlimits"]

_MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use; ``None`` means no limit of that kind.

    ``timeout_s`` is wall-clock time enforced by the worker (it kills the process group);
    the others become rlimits in the child.
    """

    timeout_s: float | None = None
    memory_mb: int | None = None
    cpu_s: int | None = None
    nofile: int = 256
    nproc: int = 64
    fsize_mb: int = 64
    pids: int = 256
    """Processes and threads the whole run may have at once (its cgroup's ``pids.max``)."""

    def __post_init__(self) -> None:
        for name in (
            "timeout_s",
            "memory_mb",
            "cpu_s",
            "nofile",
            "nproc",
            "fsize_mb",
            "pids",
        ):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not math.isfinite(value) or value <= 0
            ):
                raise SandboxError(
                    f"Sandbox limit {name} must be a positive number, got {value!r}.",
                    code="invalid_limits",
                )

    def to_record(self) -> dict[str, float | int | None]:
        """The limits as the run header carries them (``Limits(**record)`` rebuilds them);
        spelled out because ``dataclasses.asdict`` costs more than the rest of the header."""
        return {
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
            "cpu_s": self.cpu_s,
            "nofile": self.nofile,
            "nproc": self.nproc,
            "fsize_mb": self.fsize_mb,
            "pids": self.pids,
        }


def address_space_in_use() -> int:
    """Bytes of virtual address space this process maps now (``VmSize``)."""
    fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pages = int(os.read(fd, 256).split(maxsplit=1)[0])
    finally:
        os.close(fd)
    return pages * resource.getpagesize()


RESOURCES: Final = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
}
"""The rlimits a child gets, by the short names reports use."""


def planned_rlimits(
    limits: Limits, baseline_bytes: int, *, address_space: bool = True
) -> dict[str, tuple[int, int]]:
    """``{name: (soft, hard)}`` for ``limits``, soft and hard alike so the job cannot raise
    them, clamped to the current hard limits (see :func:`apply_rlimits`).

    ``address_space=False`` when a memory cgroup bounds the run: ``RLIMIT_AS`` then only
    adds failure modes (orjson, for one, crashes rather than raise when an mmap fails).
    """
    plan: dict[str, tuple[int, int]] = {}
    if limits.memory_mb is not None and address_space:
        size = baseline_bytes + limits.memory_mb * _MIB
        plan["as"] = (size, size)
    if limits.cpu_s is not None:
        # The soft limit sends SIGXCPU, which the child does not handle; the hard limit, one
        # second later, is the kernel's SIGKILL backstop should it ever be ignored.
        plan["cpu"] = (limits.cpu_s, limits.cpu_s + 1)
    plan["nofile"] = (limits.nofile, limits.nofile)
    plan["nproc"] = (limits.nproc, limits.nproc)
    plan["fsize"] = (limits.fsize_mb * _MIB, limits.fsize_mb * _MIB)
    plan["core"] = (0, 0)
    return {name: _clamp(RESOURCES[name], soft, hard) for name, (soft, hard) in plan.items()}


def apply_rlimits(
    limits: Limits, baseline_bytes: int, *, address_space: bool = True, pid: int = 0
) -> None:
    """Set every rlimit of :func:`planned_rlimits`, on this process or on ``pid`` (a helper
    it started: ``prlimit(2)``).

    Raises:
        OSError: the kernel refused a limit (the caller reports it as a setup failure).
    """
    plan = planned_rlimits(limits, baseline_bytes, address_space=address_space)
    for name, value in plan.items():
        if pid:
            resource.prlimit(pid, RESOURCES[name], value)
        else:
            resource.setrlimit(RESOURCES[name], value)


def _clamp(which: int, soft: int, hard: int) -> tuple[int, int]:
    # Without CAP_SYS_RESOURCE (missing on many hosts, this one included) a hard limit can
    # only go down, so never ask for more than the current hard limit.
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
        soft = min(soft, hard)
    return soft, hard
