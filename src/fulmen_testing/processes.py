"""The processes a sandboxed run left on the host, found by the run's own host uid."""

from __future__ import annotations

import os
import time

__all__ = ["left_after", "run_processes"]


def run_processes(uid: int) -> list[int]:
    """Host pids running as the run's host uid: every process the run started has it."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                found_uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if found_uid == uid:
            found.append(int(name))
    return found


def left_after(uid: int, seconds: float = 5.0) -> list[int]:
    """Poll (with a deadline: a process's exit is not an event a test can await here) until no
    process of the run is left; those still there at the deadline."""
    deadline = time.monotonic() + seconds
    left = run_processes(uid)
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = run_processes(uid)
    return left
