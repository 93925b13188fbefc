"""Fill the small-object allocator's free blocks in the zygote, so that children allocate
into pages of their own instead of copying the zygote's.

CPython's allocator (pymalloc) serves objects of up to 512 bytes from 16 KiB pools, one
size class per pool, and takes a block from a partly used pool before it opens a new one.
After the zygote's imports and warm-up some 3,000 blocks are free, a few in each of hundreds
of pools: holes left by what the imports freed. A forked child's first objects go into those
holes, and each hole lies on a page the zygote filled, so each costs the child a
copy-on-write fault (some 2-3 us here). Filling them once in the zygote, with small objects
that nothing ever reads or counts references to, sends the children's objects to fresh
pools, several to a page: about 60 fewer faults per child and 35 fewer in the zygote
(``bench/child.py``), for some 300 KB the zygote keeps (shared by every child, not copied).

The free blocks per size class are what ``sys._debugmallocstats`` prints; where it prints
no such table (another allocator, another interpreter) nothing is filled.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Final

__all__ = ["fill_free_blocks", "free_blocks", "parse_stats"]

#: A row of the size-class table: class, block size, pools, blocks in use, free blocks.
_ROW: Final = re.compile(r"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.MULTILINE)
#: ``PyBytesObject``'s size without its bytes: a header of 32 and the closing NUL.
_BYTES_OVERHEAD: Final = 33


def parse_stats(text: str) -> dict[int, int]:
    """Free blocks per block size, from ``sys._debugmallocstats``'s output."""
    return {int(size): int(free) for size, free in _ROW.findall(text)}


def free_blocks() -> dict[int, int]:
    """Free blocks per block size now; empty where the interpreter cannot say.

    ``sys._debugmallocstats`` writes to the C stderr: it is pointed at a memfd for the call,
    which is why this is for a single-threaded process (the zygote at its start).
    """
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    captured = os.memfd_create("mallocstats", os.MFD_CLOEXEC)
    try:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(captured, 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        size = os.lseek(captured, 0, os.SEEK_END)
        text = os.pread(captured, size, 0).decode(errors="replace")
    finally:
        os.close(captured)
    return parse_stats(text)


def fill_free_blocks(rounds: int = 2) -> list[object]:
    """Allocate one object into every free block; keep what this returns for good.

    Each object is of a type the garbage collector does not track (``object()``, ``int``,
    ``bytes``), so no collection in a child touches it. The second round fills what the
    first one's own bookkeeping freed.
    """
    ballast: list[object] = []
    for _ in range(rounds):
        for size, free in free_blocks().items():
            if size <= 16:
                ballast.extend(object() for _ in range(free))
            elif size <= 32:
                ballast.extend(2**40 + n for n in range(free))
            elif size > _BYTES_OVERHEAD:
                ballast.extend(b"\0" * (size - _BYTES_OVERHEAD) for _ in range(free))
    return ballast
