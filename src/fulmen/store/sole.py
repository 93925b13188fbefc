"""Who else serves a SQLite store: a second coordinator on one file is said, not refused.

A SQLite store is for one coordinator: its group commit and its wake-ups live in the
coordinator's process, so a second one on the same file takes turns at SQLite's write lock
and hears of the other's new runs only by polling. Two may overlap on purpose, for a moment
(a restart that starts the new process before the old one ends, as
tests/acceptance/test_e2e_log_restarts.py does), and that works; for longer it is the
mistake of issue 21 (a second ``fulmen server`` started beside ``fulmen up``), which should
not be quiet. So a coordinator holds ``<file>.coordinator`` (an flock, released by the kernel
however the process ends, with its pid in it) while it runs, and one that finds it held says
in one warning who holds it, then serves all the same. PostgreSQL takes any number of
coordinators and needs none of this.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fulmen.store.files import open_private

__all__ = ["sole_coordinator"]

log = logging.getLogger(__name__)


@contextmanager
def sole_coordinator(path: Path) -> Iterator[bool]:
    """Hold the SQLite store at ``path`` for this process's coordinator while the block runs;
    whether it could (``False``: another coordinator holds it, and a warning said so)."""
    marker = path.with_name(path.name + ".coordinator")
    fd = open_private(marker)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            log.warning(
                "another coordinator (pid %s) serves the SQLite store %s too: fine for a "
                "restart's moment; for longer, stop one of them, give this one another data "
                "directory (--data-dir, FULMEN_DATA_DIR), or use PostgreSQL for several",
                holder,
                path,
            )
            yield False
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)
