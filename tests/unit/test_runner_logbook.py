"""A worker's log: JSON lines, rotated at a size, read back by time, awaited by predicate."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

from fulmen.runner.logbook import Logbook
from fulmen_testing.clock import FakeClock


def test_lines_rotate_at_the_size_limit_and_read_back_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
        book = Logbook(str(tmp_path), clock, max_file_bytes=2_000)
        for i in range(100):
            clock.advance(1)
            book.write("w", "stdout", f"line {i:03d}")
        assert os.path.getsize(tmp_path / "w.jsonl") <= 2_000
        kept = book.read("w", limit=1000)
        assert [r["line"] for r in kept] == [f"line {i:03d}" for i in range(100 - len(kept), 100)]
        assert 20 < len(kept) < 100  # the current file and the one before it
        since = kept[-3]["ts"]
        assert [r["line"] for r in book.read("w", since=since)] == ["line 098", "line 099"]
        assert book.read("w", limit=0) == []
        waiting = asyncio.ensure_future(book.wait_for("w", lambda r: r["line"] == "later"))
        await asyncio.sleep(0)
        assert not waiting.done()
        book.write("w", "runner", "later")
        assert (await waiting)["stream"] == "runner"
        book.remove("w")
        assert book.read("w") == [] and not list(tmp_path.iterdir())

    asyncio.run(main())


def test_a_workers_config_values_are_masked_in_its_records_only(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
    book.mask("w", {"token": "tok-123456", "pin": 4321, "url": "https://api.example.org"})
    book.write("w", "stdout", "token tok-123456 and pin 4321 at https://api.example.org")
    book.write("w", "runner", "ended", error="raised tok-123456")
    book.write("other", "stdout", "tok-123456")
    assert [(r["line"], r.get("error")) for r in book.read("w")] == [
        ("token *** and pin *** at https://api.example.org", None),  # a locating key stays
        ("ended", "raised ***"),
    ]
    assert book.read("other")[0]["line"] == "tok-123456"
    assert book.scrub("w", "x tok-123456") == "x ***" and book.scrub("other", "tok") == "tok"
    assert b"tok-123456" not in (tmp_path / "w.jsonl").read_bytes()
    book.remove("w")
    assert book.scrub("w", "tok-123456") == "tok-123456"
