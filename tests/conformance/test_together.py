"""``Store.together()`` (issue 20): the writes of a block are one transaction on both backends:
invisible to others until the block returns, and a refused one rolled back alone."""

from __future__ import annotations

import asyncio

import pytest

from fulmen.errors import NotFoundError
from fulmen.store import SQLStore, StepStart
from fulmen_testing.clock import FakeClock

from .test_store import log, seed, started_run

pytestmark = pytest.mark.anyio


async def test_a_blocks_writes_land_together_and_a_refused_one_alone(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    run_id = await started_run(store)
    look = asyncio.Event()

    async def another_reader() -> list[str]:
        await look.wait()
        return [step.id for step in (await store.get_run(run_id)).steps]

    reader = asyncio.create_task(another_reader())  # made before the block: not part of it
    async with store.together():
        await store.start_step(run_id, StepStart("s1", "j1"))
        with pytest.raises(NotFoundError):
            await store.start_step(run_id, StepStart("s2", "no-such-job"))
        await store.append_logs(run_id, [log("in s1", clock, step_id="s1")])
        # What is shown is that a commit does not happen, so there is no event to await:
        # give one the time to happen (SQLite's committer runs as soon as the loop does).
        await asyncio.sleep(0.05)
        look.set()
        assert await reader == []  # nothing is committed before the block ends
    assert [step.id for step in (await store.get_run(run_id)).steps] == ["s1"]
    assert [entry.message for entry in (await store.get_logs(run_id)).items] == ["in s1"]
