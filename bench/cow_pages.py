"""Which of the zygote's objects a forked child's run writes, and so copies page by page.

A child's CPU is for a good part copy-on-write faults (``bench/child.py``): each page of the
zygote's heap it first writes is copied. This prepares a process as the zygote prepares
itself (``entry.PRELOAD`` imported, ``entry.WARM_UP`` called as the zygote calls them, the
allocator's free blocks filled, ``gc.freeze``), forks, and lets the child run the runtime's
warm-up (a one-step workflow, as a spare does before its run). The child then reads which
pages of the heap it no longer shares (``/proc/self/pagemap``'s exclusive bit) and sends
their contents back; the parent compares them word by word with its own snapshot taken at
the fork, and names the object each changed word lies in.

Printed: the pages the run copied per mapping, and the changed words per kind of object and
offset within it (offset 0 is the reference count; a code object's offset 48 holds
CPython 3.11's warm-up counter, higher offsets its bytecode's inline caches). A word written
and set back (a reference taken and dropped) copies its page but shows no change: the
counts of words are a floor, the pages are exact. Figures only; Linux, CPython 3.11.

    .venv/bin/python bench/cow_pages.py [--top 25]
"""

from __future__ import annotations

import argparse
import bisect
import collections
import ctypes
import gc
import os
import pickle
import struct
import sys
import types
from collections.abc import Iterator

from fulmen.runtime import entry
from fulmen.sandbox import pools, zygote

PAGE = os.sysconf("SC_PAGE_SIZE")
WORD = 8


def prepare() -> None:
    """What the zygote does before it forks its first child (``sandbox/zygote.py``), with
    its own functions."""
    errors = zygote._preload(entry.PRELOAD)
    zygote._warm_ups(entry.WARM_UP, errors)
    if errors:
        raise SystemExit(f"the zygote's preparation failed: {errors}")
    gc.collect()
    zygote._ballast.extend(pools.fill_free_blocks())
    gc.freeze()


def writable_mappings() -> list[tuple[int, int, str]]:
    """The anonymous memory, the brk heap and libpython's data: where objects live."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else "anonymous"
            if "w" in fields[1] and (name in ("anonymous", "[heap]") or "libpython" in name):
                found.append((low, high, os.path.basename(name)))
    return found


def pages(mappings: list[tuple[int, int, str]], *, exclusive: bool) -> set[int]:
    """Pages present (pagemap bit 63) and, if ``exclusive``, mapped by this process only
    (bit 56)."""
    found = set()
    wanted = 1 << 63 | (1 << 56 if exclusive else 0)
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        for low, high, _ in mappings:
            entries = os.pread(fd, (high - low) // PAGE * 8, low // PAGE * 8)
            for index, (bits,) in enumerate(struct.iter_unpack("Q", entries)):
                if bits & wanted == wanted:
                    found.add(low + index * PAGE)
    finally:
        os.close(fd)
    return found


def layout() -> list[tuple[int, int, str]]:
    """Every object reachable from the collector's and the modules', as (address, size,
    kind), sorted: taken before the fork, so that what the parent allocates afterwards in
    blocks that were free then is not taken for the zygote's."""
    found: dict[int, object] = {}
    stack: list[object] = [*gc.get_objects(), *sys.modules.values()]
    while stack:
        item = stack.pop()
        if id(item) not in found:
            found[id(item)] = item
            stack.extend(gc.get_referents(item))
    return sorted((address, sys.getsizeof(item), kind(item)) for address, item in found.items())


def kind(item: object) -> str:
    if isinstance(item, types.CodeType):
        return f"code ({os.path.basename(item.co_filename)})"
    return type(item).__name__


def changed_words(
    copied: list[tuple[int, bytes]], snapshot: list[tuple[int, bytes]]
) -> Iterator[int]:
    """The addresses of the words of ``copied`` pages that differ from ``snapshot``'s."""
    for page, now in copied:
        low, before = next((low, b) for low, b in snapshot if low <= page < low + len(b))
        was = before[page - low : page - low + PAGE]
        for offset in range(0, PAGE, WORD):
            if now[offset : offset + WORD] != was[offset : offset + WORD]:
                yield page + offset


def main(top: int) -> None:
    prepare()
    objects = layout()
    mappings = writable_mappings()
    shared = pages(mappings, exclusive=False)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        before = pages(mappings, exclusive=True)
        entry.warm_up(None)
        touched = pages(mappings, exclusive=True) - before
        # The rest were not there at the fork: zero-filled, not copied.
        written = sorted(touched & shared)
        report = ([(page, ctypes.string_at(page, PAGE)) for page in written], len(touched))
        os.write(writer, pickle.dumps(report))
        os._exit(0)
    # At once, before this process changes anything: the memory the child was forked with.
    snapshot = [(low, ctypes.string_at(low, high - low)) for low, high, _ in mappings]
    os.close(writer)
    received = bytearray()
    while chunk := os.read(reader, 1 << 20):
        received += chunk
    os.waitpid(pid, 0)
    returned: tuple[list[tuple[int, bytes]], int] = pickle.loads(received)
    copied, written_in_all = returned
    new = written_in_all - len(copied)

    where = collections.Counter(
        next(name for low, high, name in mappings if low <= page < high) for page, _ in copied
    )
    print(f"pages the child's warm-up run copied: {len(copied)} (and {new} new)")
    for name, count in where.most_common():
        print(f"  {count:6d}  {name}")
    starts = [address for address, _, _ in objects]
    words: collections.Counter[tuple[str, int]] = collections.Counter()
    unknown = 0
    for address in changed_words(copied, snapshot):
        at = bisect.bisect_right(starts, address) - 1
        if at < 0 or address >= starts[at] + objects[at][1]:
            unknown += 1  # allocator headers, free blocks the child filled, C data
            continue
        words[(objects[at][2], address - starts[at])] += 1
    print(f"changed words in objects (and {unknown} elsewhere), by kind and offset:")
    for (name, offset), count in words.most_common(top):
        print(f"  {count:6d}  {name} +{offset}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25, help="kinds and offsets to print")
    main(parser.parse_args().top)
