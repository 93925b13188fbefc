"""The benchmarks run as scripts (``.venv/bin/python bench/e2e.py``), which puts ``bench/``
first on ``sys.path``: a script named like a module of the standard library stands in for it
in every benchmark. ``bench/collections.py`` did, and ``bench/e2e.py`` then died importing
asyncio (``'collections' is not a package``)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_no_benchmark_is_named_like_a_module_of_the_standard_library() -> None:
    names = {path.stem for path in BENCH.glob("*.py")}
    assert names, f"no benchmarks found in {BENCH}"
    assert not names & sys.stdlib_module_names
