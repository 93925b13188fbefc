"""Host ids for namespaced runs, one slot per run alive at once (and per spare).

A slot comes back only once its run's cgroup could be removed, i.e. every process of that
run (all of which run as its host id) is gone, so no two live runs share an id.
"""

from __future__ import annotations

from fulmen.sandbox.cgroups import RunCgroup
from fulmen.sandbox.namespaces import UID_RANGE

__all__ = ["Slots"]


class Slots:
    """Host ids for namespaced runs: each live run (and the spare) holds one of its own.

    A slot comes back only once its run's cgroup could be removed, i.e. every process of
    that run (all of which run as its host id) is gone, so no two live runs share an id.
    """

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0
        self._draining: list[tuple[int, RunCgroup | None]] = []

    def take(self) -> int | None:
        """A free slot, or None when :data:`UID_RANGE` runs are alive at once."""
        self._drain()
        if self._free:
            return self._free.pop()
        if self._next >= UID_RANGE:
            return None
        self._next += 1
        return self._next - 1

    def give_back(self, slot: int, cgroup: RunCgroup | None) -> None:
        self._draining.append((slot, cgroup))
        self._drain()

    def _drain(self) -> None:
        still = []
        for slot, cgroup in self._draining:
            try:
                done = cgroup is None or cgroup.remove()
            except OSError:
                done = False
            if done:
                self._free.append(slot)
            else:
                still.append((slot, cgroup))
        self._draining = still

    def leftover(self) -> int:
        self._drain()
        return len(self._draining)
