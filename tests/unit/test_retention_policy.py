"""fulmen.store.retention_policy: a project's retention settings as cutoffs at a moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fulmen.errors import InputError
from fulmen.store import Project, RetentionPolicy
from fulmen.store.retention_policy import (
    ERASE_GRACE,
    MAX_DAYS,
    Cutoffs,
    audit_cutoff,
    check_project,
    cutoffs,
    keeps_bodies,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ERASE = RetentionPolicy.ERASE_ALL


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


def project(
    history: int | None, bodies: int | None, policy: RetentionPolicy = RetentionPolicy.RETAIN_ALL
) -> Project:
    return Project(
        id="p",
        name="p",
        history_retention_period=history,
        dataclip_retention_period=bodies,
        retention_policy=policy,
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (project(None, None), Cutoffs(None, None)),  # keep everything
        (project(30, None), Cutoffs(days(30), days(30))),  # bodies go with the history
        (project(30, 7), Cutoffs(days(30), days(7))),
        (project(None, 7), Cutoffs(None, days(7))),
        (project(7, 30), Cutoffs(days(7), days(7))),  # never longer than the history
        (project(None, None, ERASE), Cutoffs(None, NOW - ERASE_GRACE)),
        (project(30, 7, ERASE), Cutoffs(days(30), NOW - ERASE_GRACE)),  # the later cutoff
        (project(MAX_DAYS, None), Cutoffs(days(MAX_DAYS), days(MAX_DAYS))),
        # stored before the bound was checked: past datetime's range, so nothing goes
        (project(10**9, None), Cutoffs(None, None)),
        (project(10**9, 10**9, ERASE), Cutoffs(None, NOW - ERASE_GRACE)),
    ],
)
def test_cutoffs(settings: Project, expected: Cutoffs) -> None:
    got = cutoffs(settings, NOW)
    assert got == expected
    assert got.anything == (expected != Cutoffs(None, None))


def test_only_erase_all_withholds_outputs() -> None:
    assert keeps_bodies(project(1, 1))
    assert not keeps_bodies(project(None, None, ERASE))


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (project(7, 14), "cannot be longer"),
        (project(0, None), "history_retention_period"),
        (project(None, -1), "dataclip_retention_period"),
        (project(MAX_DAYS + 1, None), "history_retention_period"),
        (project(None, 2**64), "dataclip_retention_period"),
        (project(None, None, "keep_some"), "retention_policy"),  # type: ignore[arg-type]
    ],
)
def test_unusable_settings_are_refused(settings: Project, words: str) -> None:
    with pytest.raises(InputError, match=words):
        check_project(settings)
    check_project(project(14, 14, ERASE))


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (None, None),  # a history kept for good: its audit trail too
        (7, days(90)),  # a short history: the trail is kept the floor's 90 days all the same
        (90, days(90)),
        (400, days(400)),  # a longer history: the trail as long
    ],
)
def test_a_projects_audit_trail_is_kept_as_its_history_never_under_the_floor(
    history: int | None, expected: datetime | None
) -> None:
    cut = audit_cutoff(project(history, None), NOW, floor_days=90, instance_days=365)
    assert cut == expected


def test_the_instances_audit_trail_is_kept_its_own_period_never_under_the_floor() -> None:
    assert audit_cutoff(None, NOW, floor_days=90, instance_days=365) == days(365)
    assert audit_cutoff(None, NOW, floor_days=90, instance_days=30) == days(90)
    assert audit_cutoff(None, NOW, floor_days=90, instance_days=MAX_DAYS + 1) is None
