"""Host ids for namespaced runs, one slot per run alive at once (and per spare).

A slot comes back only once its cgroup is empty, i.e. every process of its run (all of
which run as its host id) is gone, so no two live runs share an id.
"""

from __future__ import annotations

import contextlib

from fulmen.sandbox.cgroups import CgroupTree, RunCgroup
from fulmen.sandbox.namespaces import UID_RANGE

__all__ = ["Slots"]


class Slots:
    """Host ids for namespaced runs: each live run (and the spare) holds one of its own,
    with its cgroup, made with the slot and kept for the slot's next run (a cgroup's mkdir
    and rmdir, in each v1 hierarchy, cost more than its run's set-up).

    A slot comes back only once its cgroup holds no process, i.e. every process of its run
    (all of which run as its host id) is gone, so no two live runs share an id.
    """

    def __init__(self, tree: CgroupTree | None) -> None:
        self._tree = tree
        self._free: list[int] = []
        self._next = 0
        self._cgroups: dict[int, RunCgroup] = {}
        self._draining: list[int] = []

    def take(self) -> tuple[int, RunCgroup | None] | None:
        """A free slot and its cgroup, or None when :data:`UID_RANGE` runs are alive at once
        (or the slot's cgroup cannot be made).

        Raises:
            OSError: a new slot's cgroup could not be made.
        """
        self._drain()
        if self._free:
            slot = self._free.pop()
        elif self._next < UID_RANGE:
            slot = self._next
            if self._tree is not None:
                self._cgroups[slot] = self._tree.run_cgroup(f"run-{slot}")
            self._next += 1
        else:
            return None
        return slot, self._cgroups.get(slot)

    def give_back(self, slot: int) -> None:
        self._draining.append(slot)
        self._drain()

    def leftover(self) -> int:
        """Slots whose cgroup still holds a process of an ended run."""
        self._drain()
        return len(self._draining)

    def remove_cgroups(self) -> None:
        """At the zygote's exit, once their processes are gone; best effort."""
        for cgroup in self._cgroups.values():
            with contextlib.suppress(OSError):
                cgroup.remove()
        self._cgroups.clear()

    def _drain(self) -> None:
        still = []
        for slot in self._draining:
            cgroup = self._cgroups.get(slot)
            if cgroup is None or cgroup.is_empty():
                self._free.append(slot)
            else:
                still.append(slot)
        self._draining = still
