"""lifecycle.cancel_action: a cancel follows from the run table, and the worker's side of it:
a ``run:cancel`` push aborts the run with reason cancel, other pushes are ignored."""

from __future__ import annotations

import pytest

from fulmen.contract import Event
from fulmen.errors import TransitionError
from fulmen.lifecycle import (
    FINAL_RUN_STATES,
    IN_FLIGHT_RUN_STATES,
    CancelAction,
    RunEvent,
    RunState,
    cancel_action,
    run_sources,
)
from fulmen.phoenix.client import Push
from fulmen.reasons import Reason
from fulmen.worker.run import CANCELLED, Run


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (RunState.AVAILABLE, CancelAction.NOW),
        (RunState.CLAIMED, CancelAction.ASK_WORKER),
        (RunState.STARTED, CancelAction.ASK_WORKER),
    ],
)
def test_how_each_state_is_cancelled(state: RunState, action: CancelAction) -> None:
    assert cancel_action(state) is action


@pytest.mark.parametrize("state", sorted(FINAL_RUN_STATES))
def test_a_final_run_cannot_be_cancelled(state: RunState) -> None:
    with pytest.raises(TransitionError, match="already in completed state") as info:
        cancel_action(state, what="run r-1")
    assert (info.value.state, info.value.event) == (state.value, "cancel")


def test_in_flight_is_what_the_lost_sweep_watches_and_what_limits_count() -> None:
    """claim_runs counts state IN ('claimed', 'started') against the limits."""
    assert (
        IN_FLIGHT_RUN_STATES == run_sources(RunEvent.LOSE) == {RunState.CLAIMED, RunState.STARTED}
    )


class _Aborted(Run):
    """A Run whose abort is only recorded (no channel, no child)."""

    def __init__(self) -> None:
        self.id = "r-1"
        self.aborted: list[object] = []

    def abort(self, reason: object) -> None:  # type: ignore[override]
        self.aborted.append(reason)


def test_the_worker_stops_a_run_on_run_cancel_and_ignores_other_pushes() -> None:
    run = _Aborted()
    run._on_push(Push("run:r-1", "something:new", {}))
    assert run.aborted == []
    run._on_push(Push("run:r-1", Event.RUN_CANCEL, {}))
    assert run.aborted == [CANCELLED]
    assert (CANCELLED.reason, CANCELLED.error_type) == (Reason.CANCEL, "CancelError")
