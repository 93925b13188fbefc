"""The coordinator's background services with an injected clock: the reaper (§4.6, §7.5)
and the cron scheduler (each tick once, across restarts and coordinators; no catch-up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from fulmen.coordinator import Coordinator, build_coordinator
from fulmen.coordinator.reaper import Reaper
from fulmen.coordinator.scheduler import Scheduler
from fulmen.plan import Options
from fulmen.store import EnqueueRequest, Priority, RunFilter, SQLStore, StepStart, open_store
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import (
    CREDENTIAL_KEY,
    seed,
    settings,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC))


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[SQLStore]:
    async with await open_store(store_url, credential_key=CREDENTIAL_KEY, clock=clock) as opened:
        yield opened


def coordinator(store: SQLStore, clock: FakeClock, **overrides: Any) -> Coordinator:
    return build_coordinator(settings(**overrides), store, clock=clock)


# -- reaper ---------------------------------------------------------------------------------


async def test_unjoined_claims_go_back_to_the_queue(store: SQLStore, clock: FakeClock) -> None:
    seeded = await seed(store)
    unjoined = (await store.enqueue(EnqueueRequest(seeded.workflow_id))).run_id
    joined = (await store.enqueue(EnqueueRequest(seeded.workflow_id))).run_id
    assert {run.id for run in await store.claim(2)} == {unjoined, joined}
    await store.join_run(joined)
    reaper = Reaper(coordinator(store, clock, run_join_timeout=30.0))
    clock.advance(seconds=29)
    assert (await reaper.sweep()).rolled_back == []
    clock.advance(seconds=2)
    assert (await reaper.sweep()).rolled_back == [unjoined]
    assert (await store.get_run(unjoined)).run.state == "available"
    assert (await store.get_run(joined)).run.state == "claimed"


async def test_a_started_run_past_timeout_and_grace_is_lost_with_its_steps(
    store: SQLStore, clock: FakeClock
) -> None:
    seeded = await seed(store)
    options = Options(run_timeout_ms=60_000)
    run_id = (await store.enqueue(EnqueueRequest(seeded.workflow_id, options=options))).run_id
    await store.claim(1)
    await store.join_run(run_id)
    await store.start_run(run_id)
    await store.start_step(run_id, StepStart("step-1", seeded.job_ids[0]))
    reaper = Reaper(coordinator(store, clock, run_grace_period=10.0))
    clock.advance(seconds=69)
    assert (await reaper.sweep()).lost == []
    clock.advance(seconds=2)
    [lost] = (await reaper.sweep()).lost
    assert (lost.id, lost.error_type) == (run_id, "LostAfterStart")
    detail = await store.get_run(run_id)
    assert detail.run.state == "lost"
    assert [step.state for step in detail.steps] == ["lost"]


async def test_a_claimed_run_is_lost_too_when_never_started(
    store: SQLStore, clock: FakeClock
) -> None:
    seeded = await seed(store)
    options = Options(run_timeout_ms=1_000)
    run_id = (await store.enqueue(EnqueueRequest(seeded.workflow_id, options=options))).run_id
    await store.claim(1)
    await store.join_run(run_id)  # joined, so not rolled back: it must still end
    clock.advance(seconds=12)
    [lost] = (await Reaper(coordinator(store, clock)).sweep()).lost
    assert lost.error_type == "LostAfterClaim"


# -- cron -----------------------------------------------------------------------------------


async def cron_runs(store: SQLStore, workflow_id: str) -> list[str]:
    page = await store.list_runs(RunFilter(workflow_id=workflow_id))
    assert all(run.priority is Priority.NORMAL for run in page.items)
    return [run.id for run in page.items]


async def test_each_tick_is_enqueued_once_across_a_restart(
    store_url: str, clock: FakeClock
) -> None:
    async with await open_store(store_url, credential_key=CREDENTIAL_KEY, clock=clock) as store:
        seeded = await seed(store, cron="* * * * *")
        first = Scheduler(coordinator(store, clock))
        assert await first.tick() == []  # 12:00:30: the cursor starts at 12:01
        clock.advance(seconds=35)  # 12:01:05
        assert len(await first.tick()) == 1
        assert await first.tick() == []
    # a restart: a new process, a new store connection, the same database
    async with await open_store(store_url, credential_key=CREDENTIAL_KEY, clock=clock) as store:
        second = Scheduler(coordinator(store, clock))
        assert await second.tick() == []
        clock.advance(seconds=55)  # 12:02:00, exactly the next tick
        assert len(await second.tick()) == 1
        assert len(await cron_runs(store, seeded.workflow_id)) == 2


async def test_missed_ticks_are_not_caught_up(store: SQLStore, clock: FakeClock) -> None:
    seeded = await seed(store, cron="*/5 * * * *", timezone="Europe/Riga")
    scheduler = Scheduler(coordinator(store, clock, cron_misfire_grace=60.0))
    await scheduler.tick()  # cursor at 12:05
    clock.advance(hours=3)  # down for three hours: 36 ticks missed; now 15:00:30
    assert len(await scheduler.tick()) == 1  # only the latest (15:00, 30 s late) runs
    clock.advance(minutes=7)  # 15:07:30: the 15:05 tick is 2.5 min late: skipped
    assert await scheduler.tick() == []
    clock.advance(minutes=3)  # 15:10:30
    assert len(await scheduler.tick()) == 1
    assert len(await cron_runs(store, seeded.workflow_id)) == 2


async def test_two_coordinators_fire_a_tick_once(store_url: str, clock: FakeClock) -> None:
    import asyncio

    async with (
        await open_store(store_url, credential_key=CREDENTIAL_KEY, clock=clock) as a,
        await open_store(store_url, credential_key=CREDENTIAL_KEY, clock=clock) as b,
    ):
        seeded = await seed(a, cron="* * * * *")
        one, two = Scheduler(coordinator(a, clock)), Scheduler(coordinator(b, clock))
        await asyncio.gather(one.tick(), two.tick())
        for _ in range(3):
            clock.advance(minutes=1)
            fired = await asyncio.gather(one.tick(), two.tick())
            assert sum(len(runs) for runs in fired) == 1
        assert len(await cron_runs(a, seeded.workflow_id)) == 3


async def test_an_edited_schedule_restarts_its_cursor(store: SQLStore, clock: FakeClock) -> None:
    seeded = await seed(store, cron="0 * * * *")
    scheduler = Scheduler(coordinator(store, clock))
    await scheduler.tick()
    [trigger] = await store.list_cron_triggers()
    assert trigger.next_fire_at == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    stored = await store.get_workflow(seeded.workflow_id)
    triggers = tuple(
        replace(t, cron_expression="30 * * * *") if t.type == "cron" else t
        for t in stored.workflow.triggers
    )
    edited = replace(stored.workflow, triggers=triggers)
    await store.replace_workflow(edited)
    await scheduler.tick()
    [trigger] = await store.list_cron_triggers()
    assert trigger.next_fire_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


# -- claim rollback -------------------------------------------------------------------------


class DeadSocket:
    """A host whose connection is gone: nothing it is asked to send arrives (§4.3)."""

    worker_id = "gone"

    async def accept(self, join: Any, response: Any = None) -> bool:
        return True

    async def refuse(self, join: Any, response: Any) -> bool:
        return False

    async def reply(self, request: Any, ok: bool, response: Any) -> bool:
        return False


async def test_a_claim_whose_reply_cannot_arrive_is_rolled_back(
    store: SQLStore, clock: FakeClock
) -> None:
    from fulmen.coordinator.channels.queue import QueueChannel
    from fulmen.phoenix.server import Request

    seeded = await seed(store)
    run_id = (await store.enqueue(EnqueueRequest(seeded.workflow_id))).run_id
    channel = QueueChannel(DeadSocket(), coordinator(store, clock))
    claim = Request(
        "worker:queue",
        "1",
        "2",
        "claim",
        {"demand": 1, "languages": ["python"], "worker_name": "w"},
    )
    await channel.handle(claim)
    assert (await store.get_run(run_id)).run.state == "available"
    assert [run.id for run in await store.claim(1)] == [run_id]
