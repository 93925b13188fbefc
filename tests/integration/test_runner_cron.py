"""Cron triggers on a fake clock (spec runner.md §3.4): calendar minutes in the worker's time
zone, no overlapping runs of one worker, no burst of catch-up runs, one ``missed`` record for
the fires a stopped runner slept through, and the schedule back after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.clock import FakeClock
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import CRON

pytestmark = pytest.mark.timeout(60)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 1, 1, 0, minute, second, tzinfo=UTC)


async def runs(s: Served, worker_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (await s.http.get(f"/workers/{worker_id}/runs")).json()
    return result


async def started(s: Served, worker_id: str, count: int) -> None:
    """Wait for the ``count``-th run_started record."""
    await s.runner.logbook.wait_for(
        worker_id,
        lambda r: r.get("event") == "run_started" and r.get("run_id", 0) >= count,
    )


def test_runs_never_overlap_never_backfill_and_missed_fires_are_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock(at(0, 30))
        async with served(tmp_path, clock=clock) as s:
            w = await s.create(CRON, schedule="* * * * *", events=["release"], run_on_create=False)
            assert w["next_run"] == "2026-01-01T00:01:00+00:00"
            wid = w["id"]
            clock.set(at(1))
            await started(s, wid, 1)
            clock.set(at(2))  # the 00:01 run is still going: this fire is skipped
            await s.runner.logbook.wait_for(wid, lambda r: r.get("event") == "skipped-overlap")
            await _release(s, wid, 1)
            clock.set(at(10))  # eight minutes at once: one run, not eight
            await started(s, wid, 3)
            await _release(s, wid, 3)
            history = await runs(s, wid)
            assert [(r["trigger"], r["outcome"]) for r in history] == [
                ("cron", "ok"), ("cron", "skipped-overlap"), ("cron", "ok")]  # fmt: skip
            assert [r["scheduled_at"] for r in history] == [
                at(3).isoformat(), at(2).isoformat(), at(1).isoformat()]  # fmt: skip
            assert (await s.http.get(f"/workers/{wid}")).json()["next_run"] == at(11).isoformat()
        # The runner is down from 00:10 to 00:20: one "missed" record, no replay, and the
        # schedule picks up at the next minute.
        clock.set(at(20, 5))
        async with served(tmp_path, clock=clock) as s:
            detail = (await s.http.get(f"/workers/{wid}")).json()
            assert detail["state"] == "ready" and detail["schedule"] == "* * * * *"
            assert detail["next_run"] == at(21).isoformat()
            history = await runs(s, wid)
            assert history[0]["outcome"] == "missed"
            assert history[0]["scheduled_at"] == at(11).isoformat()
            assert len(history) == 4
            logged = (await s.http.get(f"/workers/{wid}/logs")).json()
            missed = [r for r in logged if r.get("event") == "missed"]
            assert [r["scheduled_at"] for r in missed] == [at(11).isoformat()]  # ISO, as ts
            clock.set(at(21))
            await started(s, wid, 5)
            await _release(s, wid, 5)

    asyncio.run(main())


async def _release(s: Served, worker_id: str, run_id: int) -> None:
    assert (await s.http.post("/events/release", json={})).status_code == 202
    await s.runner.logbook.wait_for(
        worker_id, lambda r: r.get("event") == "run_ended" and r.get("run_id") == run_id
    )


def test_schedules_follow_the_worker_time_zone(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock(datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
        async with served(tmp_path, clock=clock) as s:
            berlin = await s.create(CRON, schedule="30 9 * * 1-5", timezone="Europe/Berlin",
                                    run_on_create=False)  # fmt: skip
            assert berlin["next_run"] == "2026-07-01T07:30:00+00:00"  # CEST, a Wednesday
            yearly = await s.create(CRON, schedule="@yearly", run_on_create=False)
            assert yearly["next_run"] == "2027-01-01T00:00:00+00:00"

    asyncio.run(main())
