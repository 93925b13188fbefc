"""When a worker hears ``work-available`` (coordinator/nudges.py), with plain numbers."""

from __future__ import annotations

import pytest

from fulmen.coordinator.nudges import Nudge

WINDOW = 0.05


def test_a_new_worker_is_told_at_once() -> None:
    assert Nudge().on_work(now=10.0, window=WINDOW) == 0.0


def test_a_worker_that_has_not_claimed_since_its_push_waits_out_the_window() -> None:
    nudge = Nudge()
    nudge.on_push(now=10.0)

    assert nudge.on_work(now=10.01, window=WINDOW) == pytest.approx(WINDOW - 0.01)
    assert nudge.on_work(now=10.02, window=WINDOW) is None  # already due: one push, not two
    nudge.on_push(now=10.05)
    assert nudge.on_work(now=10.2, window=WINDOW) == 0.0  # the window has passed


def test_a_worker_that_claimed_since_its_push_is_told_at_once() -> None:
    nudge = Nudge()
    nudge.on_push(now=10.0)
    nudge.on_claim()

    assert nudge.on_work(now=10.001, window=WINDOW) == 0.0


def test_a_burst_of_enqueues_is_one_push_per_window_while_nobody_claims() -> None:
    nudge = Nudge()
    pushes = 0
    now = 0.0
    while now < 1.0:
        delay = nudge.on_work(now, WINDOW)
        if delay == 0.0 or (nudge.due is not None and nudge.due <= now):
            nudge.on_push(now)
            pushes += 1
        now += 0.001

    assert pushes <= 1.0 / WINDOW + 1
