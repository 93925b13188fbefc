"""Which paths a child may read or write: the Landlock allowlist, resolved in the zygote.

Resolved once, in the zygote, after preloading: ``sys.path`` is final by then, and the zygote
opens each path with ``O_PATH`` so that children only hand descriptors to Landlock instead of
walking the filesystem again on every fork.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from typing import Final

__all__ = ["OpenPath", "open_paths", "outermost", "python_paths"]

# Outside the interpreter: shared libraries, CA certificates and what the resolver reads (a
# job calling an API needs DNS and TLS), time zones, and the harmless devices. Deliberately
# not /etc as a whole (passwd, shadow, the worker's own configuration), /home, /root or /tmp.
SYSTEM_READ_ONLY: Final = (
    "/usr",
    "/lib",
    "/lib64",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ld.so.cache",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/localtime",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)
DEVICES_READ_WRITE: Final = ("/dev/null",)


@dataclass(frozen=True, slots=True)
class OpenPath:
    """A path opened with ``O_PATH``, kept open in the zygote for every child to use."""

    path: str
    fd: int
    is_dir: bool


def python_paths() -> list[str]:
    """The interpreter's prefixes and every ``sys.path`` entry that exists, as real paths."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += [p for p in sys.path if p]
    candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    seen: dict[str, None] = {}
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isabs(real) and os.path.exists(real):
            seen.setdefault(real)
    return list(seen)


def outermost(paths: list[str]) -> list[str]:
    """Drop every path that lies beneath another one in the list (and duplicates).

    A Landlock rule covers the whole tree beneath it, so nested rules with the same rights
    only cost each child another syscall.
    """
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(os.path.commonpath([path, outer]) == outer for outer in kept):
            kept.append(path)
    return sorted(kept)


def open_paths(paths: list[str]) -> list[OpenPath]:
    """Open each existing path with ``O_PATH``; missing ones are skipped (``/lib64``...).

    ``O_PATH`` grants nothing by itself (no read, no write); it is only a handle Landlock
    can attach a rule to. Children close these right after restricting themselves.
    """
    opened = []
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        opened.append(OpenPath(path, fd, stat.S_ISDIR(os.fstat(fd).st_mode)))
    return opened
