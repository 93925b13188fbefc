"""The run and step state tables: every legal transition, and every illegal one refused."""

from __future__ import annotations

import itertools

import pytest

from fulmen.errors import TransitionError
from fulmen.lifecycle import (
    FINAL_RUN_STATES,
    RUN_STATE_FOR_REASON,
    RUN_TABLE,
    STEP_TABLE,
    RunEvent,
    RunState,
    StepEvent,
    StepState,
    run_sources,
    run_transition,
    step_transition,
)
from fulmen.reasons import Reason

S = RunState
E = RunEvent

#: The whole legal run graph, written out by hand from worker-protocol.md §4.4, §5.10, §7.5.
LEGAL_RUN = {
    (S.AVAILABLE, E.CLAIM): S.CLAIMED,
    (S.AVAILABLE, E.CANCEL): S.CANCELLED,
    (S.CLAIMED, E.JOIN): S.CLAIMED,
    (S.CLAIMED, E.START): S.STARTED,
    (S.CLAIMED, E.STEP): S.CLAIMED,
    (S.CLAIMED, E.ROLLBACK): S.AVAILABLE,
    (S.CLAIMED, E.LOSE): S.LOST,
    (S.STARTED, E.JOIN): S.STARTED,
    (S.STARTED, E.STEP): S.STARTED,
    (S.STARTED, E.LOSE): S.LOST,
}
COMPLETABLE = {S.CLAIMED, S.STARTED}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(RunState, RunEvent)))
def test_run_table_is_exactly_the_documented_graph(state: RunState, event: RunEvent) -> None:
    if event is E.COMPLETE and state in COMPLETABLE:
        assert run_transition(state, event, Reason.FAIL) is S.FAILED
    elif (state, event) in LEGAL_RUN:
        assert run_transition(state, event) is LEGAL_RUN[(state, event)]
    else:
        with pytest.raises(TransitionError) as info:
            run_transition(state, event, Reason.SUCCESS)
        assert info.value.state == state.value
        assert info.value.event == event.value
        assert state.value in info.value.message and event.value in info.value.message


@pytest.mark.parametrize(
    ("reason", "state"),
    [
        (Reason.SUCCESS, S.SUCCESS),
        (Reason.FAIL, S.FAILED),
        (Reason.CRASH, S.CRASHED),
        (Reason.KILL, S.KILLED),
        (Reason.EXCEPTION, S.EXCEPTION),
        (Reason.CANCEL, S.CANCELLED),
    ],
)
def test_complete_lands_on_the_state_its_reason_names(reason: Reason, state: RunState) -> None:
    """§5.10's mapping, from claimed (failed before run:start) and from started."""
    assert run_transition(S.CLAIMED, E.COMPLETE, reason) is state
    assert run_transition(S.STARTED, E.COMPLETE, reason) is state


@pytest.mark.parametrize("reason", [None, Reason.LOST])
def test_complete_needs_a_worker_reason(reason: Reason | None) -> None:
    with pytest.raises(TransitionError, match="lost is decided by the server"):
        run_transition(S.STARTED, E.COMPLETE, reason)


@pytest.mark.parametrize("state", sorted(FINAL_RUN_STATES))
def test_a_final_run_says_it_is_already_completed(state: RunState) -> None:
    with pytest.raises(TransitionError, match="already in completed state") as info:
        run_transition(state, E.COMPLETE, Reason.SUCCESS, what="run r-1")
    assert info.value.message.startswith("run r-1 ")
    assert info.value.code == "illegal_transition"


def test_final_states_are_the_reasons_states_plus_lost() -> None:
    assert set(FINAL_RUN_STATES) == set(RUN_STATE_FOR_REASON.values()) | {S.LOST}
    assert all(not RUN_TABLE[state] for state in FINAL_RUN_STATES)


def test_available_cannot_start_or_complete() -> None:
    """§5.6 and §5.10: a run nobody claimed can be neither started nor completed."""
    for event in (E.START, E.COMPLETE, E.STEP, E.JOIN):
        with pytest.raises(TransitionError, match="is 'available': cannot"):
            run_transition(S.AVAILABLE, event, Reason.SUCCESS)


def test_sources_of_the_set_wise_sweeps() -> None:
    """The claim, rollback and lost-run SQL updates filter on exactly these states."""
    assert run_sources(E.CLAIM) == {S.AVAILABLE}
    assert run_sources(E.ROLLBACK) == {S.CLAIMED}
    assert run_sources(E.LOSE) == {S.CLAIMED, S.STARTED}
    assert run_sources(E.CANCEL) == {S.AVAILABLE}


def test_the_tables_cannot_be_edited_at_run_time() -> None:
    with pytest.raises(TypeError):
        RUN_TABLE[S.AVAILABLE][E.START] = S.STARTED  # type: ignore[index]


@pytest.mark.parametrize("reason", [r for r in Reason if r is not Reason.LOST])
def test_a_running_step_completes_with_its_reason(reason: Reason) -> None:
    assert step_transition(StepState.RUNNING, StepEvent.COMPLETE, reason).value == reason.value


def test_a_running_step_is_lost_with_its_run() -> None:
    assert step_transition(StepState.RUNNING, StepEvent.LOSE) is StepState.LOST


@pytest.mark.parametrize("reason", [None, Reason.LOST])
def test_a_step_completes_only_with_a_worker_reason(reason: Reason | None) -> None:
    with pytest.raises(TransitionError):
        step_transition(StepState.RUNNING, StepEvent.COMPLETE, reason)


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in StepState if s is not StepState.RUNNING for e in StepEvent],
)
def test_a_finished_step_accepts_nothing(state: StepState, event: StepEvent) -> None:
    assert not STEP_TABLE[state]
    with pytest.raises(TransitionError, match="already in completed state") as info:
        step_transition(state, event, Reason.SUCCESS, what="step s-1")
    assert (info.value.state, info.value.event) == (state.value, event.value)
