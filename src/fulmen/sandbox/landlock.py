"""Landlock, by hand: a filesystem allowlist (and, from ABI 6, IPC scoping) for the child.

Landlock is the one filesystem sandbox an unprivileged process can apply to itself, and
Docker's default seccomp profile allows it (stack-research §3.1). It needs no mount namespace,
costs well under a millisecond, and survives fork and exec. Three syscalls, see
Documentation/userspace-api/landlock.rst and ``<linux/landlock.h>``:

1. ``landlock_create_ruleset(attr, size, 0)``: the rights the ruleset *handles*, i.e. denies
   unless a rule grants them. We handle every right the running kernel's ABI knows, so
   nothing is left implicitly allowed.
2. ``landlock_add_rule(ruleset, PATH_BENEATH, {allowed, parent_fd}, 0)``: grant rights on a
   file or directory tree, identified by an open (``O_PATH``) descriptor, not by name.
3. ``landlock_restrict_self(ruleset, 0)``: enforce it on this thread and all its future
   children, irreversibly. Requires ``PR_SET_NO_NEW_PRIVS`` (or CAP_SYS_ADMIN).

A library exists (``landlock`` on PyPI) but only handles directories and has no scopes
(stack-research §3.4); this is about 100 lines.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable
from typing import Final

from fulmen.sandbox import libc

__all__ = [
    "READ_ONLY",
    "READ_WRITE_FILE",
    "Ruleset",
    "abi_version",
    "handled_fs_rights",
]

# Syscall numbers: identical on every architecture since they were added (Linux 5.13).
_SYS_CREATE_RULESET: Final = 444
_SYS_ADD_RULE: Final = 445
_SYS_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1 << 0
_RULE_PATH_BENEATH: Final = 1
_RULE_NET_PORT: Final = 2
# LANDLOCK_ACCESS_NET_BIND_TCP (ABI 4): handled, and granted for port 0 alone, a job can
# listen and connect on ephemeral ports but not take a fixed one: not a port of the host
# (with the host's network), not a port the runs sharing a namespace expect, and not the
# whole ephemeral range by binding each port in turn (which starves others' connect()).
NET_BIND_TCP: Final = 1 << 0

# LANDLOCK_ACCESS_FS_*, with the ABI that introduced each.
EXECUTE: Final = 1 << 0
WRITE_FILE: Final = 1 << 1
READ_FILE: Final = 1 << 2
READ_DIR: Final = 1 << 3
_ABI1_ALL: Final = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER: Final = 1 << 13  # ABI 2
TRUNCATE: Final = 1 << 14  # ABI 3
IOCTL_DEV: Final = 1 << 15  # ABI 5

# Rights that make sense on a non-directory; the kernel rejects a file rule with any other.
_FILE_RIGHTS: Final = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

READ_ONLY: Final = EXECUTE | READ_FILE | READ_DIR
READ_WRITE_FILE: Final = READ_FILE | WRITE_FILE | TRUNCATE

# LANDLOCK_SCOPE_* (ABI 6): forbid connecting to abstract Unix sockets and sending signals to
# processes outside this domain. Without them a job could signal the worker, or talk to any
# abstract-socket service on the host.
SCOPE_ABSTRACT_UNIX_SOCKET: Final = 1 << 0
SCOPE_SIGNAL: Final = 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _NetPortAttr(ctypes.Structure):
    _pack_ = 1  # packed in the UAPI header too
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the UAPI header: 12 bytes, not 16
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is absent or disabled."""
    try:
        return libc.syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def handled_fs_rights(abi: int) -> int:
    """Every filesystem right ``abi`` knows: all of them are denied unless a rule grants."""
    rights = _ABI1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


class Ruleset:
    """A ruleset's attribute and its rules for the paths every child is granted, built once.

    The zygote prepares it before forking, so that a child, whose every first write to a
    page is a copy-on-write fault, only makes the system calls: building two dozen ctypes
    structures in each child was most of what Landlock cost it (``bench/child.py --phases``).
    Immutable once made: children share it, and the kernel only reads it.
    """

    __slots__ = ("_attr", "_handled", "_paths", "_port_zero", "_size")

    def __init__(self, abi: int, rules: Iterable[tuple[int, int, bool]]) -> None:
        """``abi``: the kernel's ABI version (from :func:`abi_version`, at least 1); ``rules``:
        ``(fd, rights, is_dir)`` triples, as :meth:`restrict_self`'s ``more``."""
        self._handled = handled_fs_rights(abi)
        self._attr = _RulesetAttr(handled_access_fs=self._handled)
        scoped = abi >= 6
        if scoped:
            self._attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        if abi >= 4:
            self._attr.handled_access_net = NET_BIND_TCP
        # The struct grew by one u64 per feature; pass the size this ABI understands.
        self._size = 24 if scoped else 16 if abi >= 4 else 8
        self._paths = tuple(self._rule(fd, rights, is_dir) for fd, rights, is_dir in rules)
        self._port_zero = _NetPortAttr(allowed_access=NET_BIND_TCP, port=0) if abi >= 4 else None

    def _rule(self, fd: int, rights: int, is_dir: bool) -> _PathBeneathAttr:
        # Rights trimmed to what the ABI handles and, for files, to file rights, so callers
        # can pass one mask for every path.
        allowed = rights & self._handled & (-1 if is_dir else _FILE_RIGHTS)
        return _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)

    def restrict_self(self, more: Iterable[tuple[int, int, bool]] = ()) -> None:
        """Enforce the ruleset, with ``more`` rules of this process's own, on the calling
        process; irreversible.

        Args:
            more: ``(fd, rights, is_dir)`` triples, ``fd`` an ``O_PATH`` descriptor the caller
                keeps owning.

        Raises:
            OSError: a syscall failed (the caller reports the child's setup as failed).
        """
        ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(self._attr), self._size, 0)
        try:
            own = [self._rule(fd, rights, is_dir) for fd, rights, is_dir in more]
            for rule in (*self._paths, *own):
                libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
            if self._port_zero is not None:
                port = ctypes.byref(self._port_zero)
                libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, port, 0)
            libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0)
        finally:
            os.close(ruleset)
