"""A SQLite store serves one coordinator at a time.

Its write lock, its group commit and its wake-ups live in the coordinator's process; a
second coordinator on the same file would take turns at SQLite's lock with it, and neither
would hear the other's new runs. So a coordinator holds ``<file>.coordinator`` (an flock,
released by the kernel however the process ends) for as long as it runs, and one started
on a file already held is refused at once, naming the holder's pid: the mistake of issue
21, a second ``fulmen server`` started beside ``fulmen up``, is one line instead of a quiet
second queue. PostgreSQL takes any number of coordinators and needs no such lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fulmen.errors import StoreError
from fulmen.store.files import open_private

__all__ = ["sole_coordinator"]


@contextmanager
def sole_coordinator(path: Path) -> Iterator[None]:
    """Hold the SQLite store at ``path`` for this process's coordinator.

    Raises:
        StoreError: ``store_in_use`` when another coordinator holds it.
    """
    marker = path.with_name(path.name + ".coordinator")
    fd = open_private(marker)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise StoreError(
                f"another coordinator (pid {holder}) is using the SQLite store {path}: a "
                "SQLite store serves one coordinator; stop that one, point this one at another "
                "data directory (--data-dir, FULMEN_DATA_DIR), or use PostgreSQL for several",
                code="store_in_use",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
