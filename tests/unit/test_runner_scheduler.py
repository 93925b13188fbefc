"""The scheduler's timing on a fake clock, and the supervisor's restart delays."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fulmen import cron
from fulmen.runner.scheduler import MAX_SLEEP_S, Scheduler
from fulmen.runner.supervisor import SupervisorSettings, restart_delay
from fulmen_testing.clock import FakeClock


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 5, 4, hour, minute, second, tzinfo=UTC)


def test_due_fires_are_taken_once_and_never_backfilled() -> None:
    scheduler = Scheduler(FakeClock(at(10, 1)), lambda *_: None)
    every_five = cron.parse("*/5 * * * *")
    assert scheduler.set("w", every_five, at(10, 1)) == at(10, 5)
    assert scheduler.take_due(at(10, 4, 59)) == []
    assert scheduler.delay(at(10, 4, 59)) == 1.0
    # Woken at 11:07 after a long stall: one fire for 10:05, the next at 11:10.
    assert scheduler.take_due(at(11, 7)) == [("w", at(10, 5))]
    assert scheduler.next_run("w") == at(11, 10)
    assert scheduler.delay(at(11, 7)) == MAX_SLEEP_S  # never sleeps more than a minute
    scheduler.remove("w")
    assert scheduler.next_run("w") is None and scheduler.delay(at(11, 7)) == MAX_SLEEP_S


def test_the_loop_fires_on_the_clock_and_wakes_for_new_schedules() -> None:
    async def main() -> None:
        clock = FakeClock(at(9, 0, 30))
        fired: list[tuple[str, datetime]] = []
        got = asyncio.Event()

        def fire(worker_id: str, when: datetime) -> None:
            fired.append((worker_id, when))
            got.set()

        scheduler = Scheduler(clock, fire)
        task = asyncio.get_running_loop().create_task(scheduler.run())
        await clock.sleeper(MAX_SLEEP_S)  # nothing scheduled: naps a minute at most
        scheduler.set("a", cron.parse("* * * * *"), clock.now())
        await clock.sleeper(30.0)  # woken by the change, now sleeping until 09:01
        clock.set(at(9, 1))
        await got.wait()
        assert fired == [("a", at(9, 1))]
        task.cancel()

    asyncio.run(main())


def test_restart_delays_grow_to_the_cap() -> None:
    settings = SupervisorSettings(backoff_min=1.0, backoff_max=10.0)
    assert [restart_delay(n, settings) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
