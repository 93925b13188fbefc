"""Making a uid-0 child powerless: empty every capability set and lock root's special cases.

Used when the worker is root but the interpreter lives somewhere an unprivileged uid cannot
read (here: pyenv under ``/root``, mode 0700), so the child must stay uid 0. Uid 0 *without
capabilities* still owns root's files, which Landlock then fences off, but it can no longer:

- ptrace or open ``/proc/<worker>/{environ,mem}``: the kernel's ptrace access check
  (``cap_ptrace_access_check``) refuses a tracer whose permitted set is not a superset of the
  target's, and the worker's is full;
- bypass file permissions (CAP_DAC_OVERRIDE), signal or renice other users' processes, load
  modules, mount, change uid, or raise its rlimits back (CAP_SYS_RESOURCE).

See capabilities(7), "Capabilities and execution of programs by root" for why the securebits
and the bounding set matter: without them an ``execve`` by uid 0 gets a full set again.
"""

from __future__ import annotations

import ctypes
from typing import Final

from fulmen.sandbox import libc

__all__ = ["clear_sets", "drop_bounding_set", "last_cap", "lock_securebits"]

_LINUX_CAPABILITY_VERSION_3: Final = 0x20080522

# <linux/securebits.h>: NOROOT (uid 0 gets no caps on execve), NO_SETUID_FIXUP (uid changes
# do not touch caps), KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each with its *_LOCKED bit so
# that the job cannot turn them back off.
_SECBITS_ROOTLESS: Final = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_cap() -> int:
    """Highest capability number this kernel knows (read once, in the zygote)."""
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


def lock_securebits() -> None:
    """Stop execve from giving uid 0 its capabilities back. Needs CAP_SETPCAP."""
    libc.prctl(libc.PR_SET_SECUREBITS, _SECBITS_ROOTLESS)


def drop_bounding_set(last: int) -> None:
    """Empty the bounding and ambient sets, so no later execve can gain a capability.

    Needs CAP_SETPCAP, so it must run before :func:`clear_sets` or a uid change.
    """
    for cap in range(last + 1):
        libc.prctl(libc.PR_CAPBSET_DROP, cap)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)


# What clear_sets passes, made at import (in the zygote) rather than in each child, where
# making ctypes structures costs copy-on-write faults of their machinery.
_SELF = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
_EMPTY = (_CapData * 2)()  # version 3 carries 64 capabilities as two 32-bit words


def clear_sets() -> None:
    """Empty the effective, permitted and inheritable sets of this thread, for good."""
    # The kernel may write its preferred version into the header: set ours every time.
    _SELF.version = _LINUX_CAPABILITY_VERSION_3
    libc.capset(_SELF, _EMPTY)
