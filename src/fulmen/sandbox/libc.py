"""The libc entry points the sandbox needs and ``os`` lacks: ``prctl``, ``capset``, ``syscall``,
and a ``fork`` without the interpreter's fork protocol (see :func:`fork`).

Through ctypes rather than a compiled extension or a third-party binding: the calls are few and
stable, and the zygote loads this module before forking, so children pay nothing for it.
Every wrapper raises ``OSError`` with the real errno, like ``os`` does.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Final

__all__ = [
    "PR_CAPBSET_DROP",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "PR_GET_DUMPABLE",
    "PR_GET_NO_NEW_PRIVS",
    "PR_SET_DUMPABLE",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "PR_SET_SECUREBITS",
    "capset",
    "fork",
    "prctl",
    "syscall",
]

# <linux/prctl.h>
PR_SET_PDEATHSIG: Final = 1
PR_GET_DUMPABLE: Final = 3
PR_SET_DUMPABLE: Final = 4
PR_CAPBSET_DROP: Final = 24
PR_SET_SECUREBITS: Final = 28
PR_SET_NO_NEW_PRIVS: Final = 38
PR_GET_NO_NEW_PRIVS: Final = 39
PR_CAP_AMBIENT: Final = 47
PR_CAP_AMBIENT_CLEAR_ALL: Final = 4

_libc = ctypes.CDLL(None, use_errno=True)

_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_capset = _libc.capset
_capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_capset.restype = ctypes.c_int


# Called with the GIL held (a PyDLL function), as os.fork() holds it: the child's copy of the
# interpreter is then exactly the parent's, lock for lock.
_fork = ctypes.PyDLL(None, use_errno=True).fork
_fork.argtypes = []
_fork.restype = ctypes.c_int


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """``prctl(2)``; returns its non-negative result."""
    result = int(_prctl(option, arg2, arg3, arg4, arg5))
    if result < 0:
        raise _fail(f"prctl({option})")
    return result


def syscall(number: int, *args: object) -> int:
    """A raw system call, for those glibc has no wrapper for (Landlock's three).

    ``args`` are ints (passed as ``long``) or ctypes pointers such as ``ctypes.byref(x)``.
    """
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(_syscall(ctypes.c_long(number), *converted))
    if result < 0:
        raise _fail(f"syscall({number})")
    return result


def capset(header: ctypes.Structure, data: ctypes.Array[Any]) -> None:
    """``capset(2)`` with caller-built ``__user_cap_header_struct`` / ``data`` structures."""
    if _capset(ctypes.byref(header), ctypes.byref(data)) < 0:
        raise _fail("capset")


def fork() -> int:
    """``fork(2)`` as libc does it, without CPython's ``os.fork`` protocol around it.

    ``os.fork`` takes the import lock and runs every ``os.register_at_fork`` hook before and
    after the fork (threading, logging, random, concurrent.futures): hooks that make a
    child of a *threaded* parent usable, by resetting locks other threads may have held.
    In a child of the warm zygote they cost about 0.5 ms of CPU and 190 copy-on-write page
    faults (``bench/child.py``), nearly half of a bare fork's whole cost, for nothing: the
    zygote is single-threaded and holds no lock when it forks. Only for such a caller;
    a child that must not share the parent's random state reseeds it itself.

    Returns the child's pid in the parent and 0 in the child.
    """
    pid = int(_fork())
    if pid < 0:
        raise _fail("fork")
    return pid
