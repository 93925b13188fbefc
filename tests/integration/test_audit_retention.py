"""The audit trail's retention, through the coordinator's daily sweep, on SQLite and
PostgreSQL: a project's records kept as long as its history, but never fewer than 90 days
(FULMEN_AUDIT_MIN_RETENTION_DAYS) however short its history; the instance's (sign-ins) and a
deleted project's kept FULMEN_AUDIT_RETENTION_DAYS (365); a project without a history period
keeps its trail for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fulmen.coordinator import build_coordinator
from fulmen.coordinator.retention import Retention
from fulmen.store import Actor, NewAuditRecord, Project, Target
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import settings
from fulmen_testing.operator import BACKENDS, store_at

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ADA = Actor("user", "u1", "ada@example.org", "192.0.2.1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_records_are_kept_as_the_history_never_under_the_floor(
    backend: str, tmp_path: Path
) -> None:
    clock = FakeClock(NOW)
    async with store_at(backend, tmp_path, clock=clock) as (store, _):
        for project_id, history in (("short", 7), ("long", 400), ("forever", None)):
            await store.create_project(
                Project(id=project_id, name=project_id, history_retention_period=history)
            )
        aged = {
            "short": (100, 30),  # a 7-day history: kept 90 days all the same
            "long": (500, 200),  # a 400-day history: kept 400 days
            "forever": (1000,),  # no history period: kept for good
            None: (400, 200),  # the instance's: 365 days
            "deleted": (400, 200),  # a project deleted since: as the instance's
        }
        for project_id, ages in aged.items():
            for days in ages:
                clock.set(NOW - timedelta(days=days))
                action = "sign_in.failed" if project_id is None else "workflow.updated"
                target = Target("workflow", f"{project_id}-{days}")
                await store.append_audit(NewAuditRecord(ADA, action, target, project_id))
        clock.set(NOW)

        coordinator = build_coordinator(settings(retention_batch=1), store, clock=clock)
        swept = await Retention(coordinator).sweep()
        assert swept.audit_records == 4
        kept = {r.target.id for r in (await store.list_audit(limit=100)).items}
        assert kept == {"short-30", "long-200", "forever-1000", "None-200", "deleted-200"}

        # an operator's floor is the floor: a year, whatever the projects' histories
        floor = build_coordinator(
            settings(audit_min_retention_days=365, audit_retention_days=30), store, clock=clock
        )
        assert (await Retention(floor).sweep()).audit_records == 0
        clock.advance(days=170)  # the instance's 200-day-old records are past 365 days now
        assert (await Retention(floor).sweep()).audit_records == 2
        kept = {r.target.id for r in (await store.list_audit(limit=100)).items}
        assert kept == {"short-30", "long-200", "forever-1000"}
