"""Files only their owner may read: the coordinator's data directory and its database.

What the store keeps on disk (run inputs and outputs, sealed credentials, API token digests)
is nobody else's business on a shared host, so a directory the store creates is 0700 and a
file 0600, whatever the process's umask: modes are set with ``chmod`` after creating, since a
umask can only take bits away from the mode asked for (an odd one such as 0277 would leave a
database its own process cannot write). Modes of what already exists are the operator's: a
looser one is reported, in one warning line per component, and left as it is.

SQLite creates the ``-wal`` and ``-shm`` files itself, with the mode of the database file
(``unixOpen``'s ``findCreateFileMode`` and ``unixOpenSharedMemory`` copy it, then ``fchmod``
to it), so creating the database file 0600 before SQLite opens it is what makes them 0600.
Changing the process umask around the open would also work, but the umask is per process,
and other threads may be creating files meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

__all__ = ["DIR_MODE", "FILE_MODE", "loose", "open_private", "private_dir", "warn_if_loose"]

log = logging.getLogger(__name__)

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def private_dir(path: Path) -> None:
    """Make ``path`` a directory (and its missing parents) if it is not one yet; the ones
    made here are 0700. An existing directory keeps its mode."""
    if path.is_dir():
        return
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):  # made meanwhile by another process: theirs
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)


def open_private(path: Path, flags: int = os.O_RDWR, *, exclusive: bool = False) -> int:
    """A descriptor on ``path`` opened with ``flags``; a file created here is 0600.

    Raises:
        FileExistsError: ``exclusive``, and the file exists.
        OSError: as ``os.open``.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if exclusive:
            raise
        return os.open(path, flags)
    os.fchmod(fd, FILE_MODE)
    return fd


def loose(paths: Iterable[Path]) -> list[str]:
    """Each of ``paths`` that exists and lets its group or others in, as ``path (mode)``."""
    found = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(f"{path} ({mode:04o})")
    return found


def warn_if_loose(what: str, paths: Iterable[Path]) -> None:
    """One warning line naming those of ``paths`` that others may read (see :func:`loose`)."""
    found = loose(paths)
    if found:
        log.warning(
            "%s: readable by other users: %s; only its owner should be (chmod go-rwx)",
            what,
            ", ".join(found),
        )
