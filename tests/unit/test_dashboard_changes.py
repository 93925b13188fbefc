"""The dashboard's change feed: bursts coalesced into few notices, each page told only what
concerns it, and every stream released when the coordinator stops."""

from __future__ import annotations

import asyncio

import pytest

from fulmen.coordinator.changes import Changes, Coalescer, Notice

# -- the coalescer (no I/O) ----------------------------------------------------------------------


def test_the_first_change_after_a_quiet_window_is_told_at_once() -> None:
    coalescer = Coalescer(window=0.1)
    assert coalescer.on_change(10.0, "a") == 0.0
    assert coalescer.take(10.0) == Notice(frozenset({"a"}))


def test_fifty_log_frames_in_a_window_are_one_notice() -> None:
    coalescer = Coalescer(window=0.1)
    assert coalescer.on_change(10.0, "a") == 0.0
    coalescer.take(10.0)
    assert coalescer.on_change(10.01, "a") == pytest.approx(0.09)
    for i in range(49):
        assert coalescer.on_change(10.02 + i / 1000, "a") is None  # already due
    assert coalescer.take(10.1) == Notice(frozenset({"a"}))
    # nothing more changed: the next change, a window later, goes at once again
    assert coalescer.on_change(10.3, "b") == 0.0


def test_a_notice_names_every_run_that_changed_and_an_unnamed_one() -> None:
    coalescer = Coalescer(window=0.1)
    coalescer.on_change(0.0, "a")
    coalescer.take(0.0)
    coalescer.on_change(0.05, "b")
    coalescer.on_change(0.06, None)
    coalescer.on_change(0.07, "c")
    assert coalescer.take(0.1) == Notice(frozenset({"b", "c"}), any_run=True)
    assert coalescer.take(0.2) == Notice()  # what changed was handed over once


@pytest.mark.parametrize(
    ("notice", "page", "concerned"),
    [
        (Notice(frozenset({"a"})), None, True),  # the runs list hears of every run
        (Notice(frozenset({"a"})), "a", True),
        (Notice(frozenset({"a"})), "b", False),  # another run's page does not
        (Notice(any_run=True), "b", True),  # a run enqueued, id unknown: maybe its sibling
    ],
)
def test_a_page_hears_what_concerns_it(notice: Notice, page: str | None, concerned: bool) -> None:
    assert notice.concerns(page) is concerned


# -- the broadcaster -----------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_burst_reaches_a_stream_as_at_most_two_notices() -> None:
    published: list[Notice] = []
    changes = Changes(window=0.05, publish=published.append)
    async with changes.subscribe() as stream:
        for _ in range(50):
            changes.changed("a")
        assert await stream.wait(1.0)  # the first, at once
        assert await stream.wait(1.0)  # the other 49, together a window later
        assert not await stream.wait(0.2)
    assert published == [Notice(frozenset({"a"})), Notice(frozenset({"a"}))]
    assert changes.subscribers == 0


@pytest.mark.anyio
async def test_a_run_page_hears_only_its_own_run() -> None:
    changes = Changes(window=0.01)
    async with changes.subscribe("mine") as mine, changes.subscribe() as every:
        changes.changed("other")
        assert await every.wait(1.0)
        assert not await mine.wait(0.05)
        changes.changed("mine")
        assert await mine.wait(1.0)


@pytest.mark.anyio
async def test_other_coordinators_notices_are_told_here_and_not_published_again() -> None:
    published: list[Notice] = []
    changes = Changes(window=0.01, publish=published.append)
    async with changes.subscribe("r") as stream:
        changes.heard(Notice(frozenset({"r"})))
        assert await stream.wait(1.0)
    assert published == []


@pytest.mark.anyio
async def test_closing_ends_every_stream_at_once_and_those_opened_later() -> None:
    changes = Changes()
    async with changes.subscribe() as stream:
        waiting = asyncio.create_task(stream.wait(60.0))
        await asyncio.sleep(0)  # let it start waiting
        changes.close()
        async with asyncio.timeout(1.0):
            assert await waiting is False
        assert stream.closed
    async with changes.subscribe() as late:
        assert late.closed and await late.wait(60.0) is False
    changes.changed("a")  # nothing to tell, nothing raised
