"""The zygote fills the allocator's free blocks before it forks (``fulmen.sandbox.pools``)."""

from __future__ import annotations

import gc
import sys

import pytest

from fulmen.sandbox import pools

STATS = """Small block threshold = 512, in 32 size classes.

class   size   num pools   blocks in use  avail blocks
-----   ----   ---------   -------------  ------------
    0     16           1             260           761
    1     32          11            5439           171
   31    512           6             186             0

# arenas allocated total           =                   13
"""


def test_the_size_class_table_is_read_and_nothing_else() -> None:
    assert pools.parse_stats(STATS) == {16: 761, 32: 171, 512: 0}
    assert pools.parse_stats("no table here\n# bytes in allocated blocks = 12,764,704\n") == {}


@pytest.mark.skipif(not hasattr(sys, "_debugmallocstats"), reason="CPython's allocator only")
def test_filling_leaves_the_partly_used_pools_full() -> None:
    gc.collect()
    length = 400 - 33  # a bytes object of 400 bytes (not a constant: folded, it is one object)
    garbage = [object() for _ in range(5000)] + [b"\0" * length for _ in range(5000)]
    del garbage[::2]  # holes in the pools of two size classes: 16 and 400 bytes
    before = pools.free_blocks()
    assert before[16] >= 2500 and before[400] >= 2500

    ballast = pools.fill_free_blocks()

    after = pools.free_blocks()
    assert len(ballast) >= 5000
    # What is free now is the tail of a pool the filling itself opened, not thousands of
    # holes; the collector tracks none of what fills them.
    assert after[16] < before[16] / 2 and after[400] < before[400] / 2
    assert not any(gc.is_tracked(item) for item in ballast[:: max(1, len(ballast) // 1000)])


def test_the_standard_error_is_back_where_it_was(capfd: pytest.CaptureFixture[str]) -> None:
    pools.free_blocks()
    print("after", file=sys.stderr)
    captured = capfd.readouterr()
    assert captured.err == "after\n"
