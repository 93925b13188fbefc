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
    "abi_version",
    "handled_fs_rights",
    "restrict_self",
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


def restrict_self(abi: int, rules: Iterable[tuple[int, int, bool]]) -> None:
    """Enforce a ruleset on the calling process; irreversible.

    Args:
        abi: the kernel's ABI version (from :func:`abi_version`, at least 1).
        rules: ``(fd, rights, is_dir)`` triples, ``fd`` an ``O_PATH`` descriptor the caller
            keeps owning. ``rights`` are trimmed to what the ABI handles and, for files, to
            file rights, so callers can pass one mask for every path.

    Raises:
        OSError: a syscall failed (the caller reports the child's setup as failed).
    """
    handled = handled_fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled)
    scoped = abi >= 6
    if scoped:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP
    # The struct grew by one u64 per feature; pass the size this ABI understands.
    size = 24 if scoped else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        rule = _PathBeneathAttr()
        for fd, rights, is_dir in rules:
            rule.allowed_access = rights & handled & (-1 if is_dir else _FILE_RIGHTS)
            rule.parent_fd = fd
            libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        if abi >= 4:
            port_zero = _NetPortAttr(allowed_access=NET_BIND_TCP, port=0)
            libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, ctypes.byref(port_zero), 0)
        libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
