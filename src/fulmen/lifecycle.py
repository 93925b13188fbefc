"""The life of a run and of a step, as tables of legal transitions. Pure: no I/O, no clock.

Everything that decides whether a run or step may change state lives here, and the store asks
these tables before it writes (STYLE.md P2). A transition the table does not list raises
``TransitionError`` naming the current state and the event, and the caller changes nothing.

Runs (worker-protocol.md §4.4, §5.6, §5.10, §7.5)::

    available ──claim──► claimed ──start──► started ──complete──► success | failed | crashed
      │    ▲                │                  │                  killed | exception | cancelled
      │    └───rollback─────┤                  └──lose──► lost
      │                     ├──complete──► (a final state: runs that fail before run:start)
    cancel                  └──lose──► lost
      ▼
    cancelled

``join`` (the worker joined ``run:<id>``) and ``step`` (a step event arrived) leave the state as
it is but are only legal while the run is in flight, so a late event from a worker whose run was
rolled back or marked lost is refused instead of being written. Final states accept nothing:
``complete`` on a final run is the "already in completed state" of §5.10.

``complete`` lands on the final state its exit reason names (``RUN_STATE_FOR_REASON``); ``lost``
is never a reason a worker may send (§7.1), only the server's ``lose``.

Steps are ``running`` until ``complete`` (by reason) or ``lose`` (§7.5: the run was lost while
the step was open); a finished step accepts nothing.

Cancelling (issue 8) follows from the same table: a run the table lets ``cancel`` is cancelled
at once; a run *in flight* (``IN_FLIGHT_RUN_STATES``: a worker has it) cannot be, since only
its worker can stop its child, so the cancel is asked of the worker, which then completes the
run with reason ``cancel``; a final run cannot be cancelled. ``cancel_action`` decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from fulmen.errors import TransitionError
from fulmen.reasons import Reason

__all__ = [
    "FINAL_RUN_STATES",
    "IN_FLIGHT_RUN_STATES",
    "RUN_STATE_FOR_REASON",
    "RUN_TABLE",
    "STEP_TABLE",
    "CancelAction",
    "RunEvent",
    "RunState",
    "StepEvent",
    "StepState",
    "cancel_action",
    "run_sources",
    "run_transition",
    "step_transition",
]


class RunState(StrEnum):
    #: Queued and claimable (Lightning calls it ``available``; DESIGN.md says "queued").
    AVAILABLE = "available"
    CLAIMED = "claimed"
    STARTED = "started"
    SUCCESS = "success"
    FAILED = "failed"
    CRASHED = "crashed"
    KILLED = "killed"
    EXCEPTION = "exception"
    CANCELLED = "cancelled"
    LOST = "lost"


class RunEvent(StrEnum):
    CLAIM = "claim"
    JOIN = "join"
    START = "start"
    STEP = "step"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    LOSE = "lose"
    CANCEL = "cancel"


class StepState(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAIL = "fail"
    CRASH = "crash"
    KILL = "kill"
    EXCEPTION = "exception"
    CANCEL = "cancel"
    LOST = "lost"


class StepEvent(StrEnum):
    COMPLETE = "complete"
    LOSE = "lose"


#: §5.10: the run state each exit reason of ``run:complete`` lands on. ``lost`` is absent on
#: purpose: only the server decides that a run is lost.
RUN_STATE_FOR_REASON: Mapping[Reason, RunState] = MappingProxyType(
    {
        Reason.SUCCESS: RunState.SUCCESS,
        Reason.FAIL: RunState.FAILED,
        Reason.CRASH: RunState.CRASHED,
        Reason.KILL: RunState.KILLED,
        Reason.EXCEPTION: RunState.EXCEPTION,
        Reason.CANCEL: RunState.CANCELLED,
    }
)

#: Marks a ``complete`` entry: the next state is the one the exit reason names.
BY_REASON = None

_FINAL: Mapping[RunEvent, RunState | None] = MappingProxyType({})

#: current state -> event -> next state (``BY_REASON`` for ``complete``).
RUN_TABLE: Mapping[RunState, Mapping[RunEvent, RunState | None]] = MappingProxyType(
    {
        RunState.AVAILABLE: MappingProxyType(
            {RunEvent.CLAIM: RunState.CLAIMED, RunEvent.CANCEL: RunState.CANCELLED}
        ),
        RunState.CLAIMED: MappingProxyType(
            {
                RunEvent.JOIN: RunState.CLAIMED,
                RunEvent.START: RunState.STARTED,
                # Lenient like Lightning: a worker whose run:start reply was lost goes on.
                RunEvent.STEP: RunState.CLAIMED,
                # §5.10: runs that fail before run:start (credential or dataclip errors).
                RunEvent.COMPLETE: BY_REASON,
                # §4.6: claimed but the run channel was never joined.
                RunEvent.ROLLBACK: RunState.AVAILABLE,
                RunEvent.LOSE: RunState.LOST,
            }
        ),
        RunState.STARTED: MappingProxyType(
            {
                # §1.6: a worker rejoins its run channels after a reconnect.
                RunEvent.JOIN: RunState.STARTED,
                RunEvent.STEP: RunState.STARTED,
                RunEvent.COMPLETE: BY_REASON,
                RunEvent.LOSE: RunState.LOST,
            }
        ),
        **{
            state: _FINAL
            for state in (
                RunState.SUCCESS,
                RunState.FAILED,
                RunState.CRASHED,
                RunState.KILLED,
                RunState.EXCEPTION,
                RunState.CANCELLED,
                RunState.LOST,
            )
        },
    }
)

FINAL_RUN_STATES: frozenset[RunState] = frozenset(s for s, t in RUN_TABLE.items() if not t)

#: current state -> event -> next state (``BY_REASON`` for ``complete``).
STEP_TABLE: Mapping[StepState, Mapping[StepEvent, StepState | None]] = MappingProxyType(
    {
        StepState.RUNNING: MappingProxyType(
            {StepEvent.COMPLETE: BY_REASON, StepEvent.LOSE: StepState.LOST}
        ),
        **{state: MappingProxyType({}) for state in StepState if state is not StepState.RUNNING},
    }
)


def run_transition(
    state: RunState, event: RunEvent, reason: Reason | None = None, *, what: str = "the run"
) -> RunState:
    """The state a run in ``state`` moves to on ``event``, or TransitionError.

    Args:
        state: the run's current state.
        event: what happened.
        reason: the exit reason; required for ``complete``, ignored otherwise.
        what: how to name the run in the error message, e.g. ``"run 7f3…"``.

    Raises:
        TransitionError: the table has no such transition (the message names ``state`` and
            ``event``; for a final run it says "already in completed state", §5.10), or
            ``complete`` was given no reason or the server-only reason ``lost``.
    """
    allowed = RUN_TABLE[state]
    if event not in allowed:
        raise _refusal(what, state, event, final=state in FINAL_RUN_STATES, allowed=allowed)
    target = allowed[event]
    if target is not None:
        return target
    if reason is None or reason not in RUN_STATE_FOR_REASON:
        raise TransitionError(
            f"{what} cannot complete with reason {reason!r}: a run completes with one of "
            + ", ".join(r.value for r in RUN_STATE_FOR_REASON)
            + " (lost is decided by the server)",
            state=state.value,
            event=event.value,
        )
    return RUN_STATE_FOR_REASON[reason]


def step_transition(
    state: StepState, event: StepEvent, reason: Reason | None = None, *, what: str = "the step"
) -> StepState:
    """The state a step in ``state`` moves to on ``event``, or TransitionError.

    A completed step's state is its exit reason (``fail``, ``kill``…), as Lightning stores it.
    """
    allowed = STEP_TABLE[state]
    if event not in allowed:
        raise _refusal(what, state, event, final=state is not StepState.RUNNING, allowed=allowed)
    target = allowed[event]
    if target is not None:
        return target
    if reason is None or reason is Reason.LOST:
        raise TransitionError(
            f"{what} cannot complete with reason {reason!r}: lost is decided by the server",
            state=state.value,
            event=event.value,
        )
    return StepState(reason.value)


def run_sources(event: RunEvent) -> frozenset[RunState]:
    """Every state from which ``event`` is legal.

    The claim, rollback and lost-run sweeps are set-wise SQL updates whose ``WHERE state …``
    must say exactly this; the conformance tests hold them to it.
    """
    return frozenset(state for state, allowed in RUN_TABLE.items() if event in allowed)


class CancelAction(StrEnum):
    #: Cancelled at once, by the store (a queued run).
    NOW = "now"
    #: Recorded as asked; the worker that has the run is told to stop it (``run:cancel``).
    ASK_WORKER = "ask_worker"


def cancel_action(state: RunState, *, what: str = "the run") -> CancelAction:
    """How a run in ``state`` is cancelled; TransitionError for a final run."""
    if RunEvent.CANCEL in RUN_TABLE[state]:
        return CancelAction.NOW
    if state in IN_FLIGHT_RUN_STATES:
        return CancelAction.ASK_WORKER
    raise _refusal(what, state, RunEvent.CANCEL, final=True, allowed=())


def _refusal(
    what: str, state: StrEnum, event: StrEnum, *, final: bool, allowed: Iterable[StrEnum]
) -> TransitionError:
    if final:
        message = f"{what} is already in completed state {state.value!r}: cannot {event.value}"
    else:
        options = ", ".join(e.value for e in allowed) or "nothing"
        message = f"{what} is {state.value!r}: cannot {event.value} (allowed: {options})"
    return TransitionError(message, state=state.value, event=event.value)


#: The states in which a worker has the run (the ones the lost-run sweep watches): each such
#: run takes one slot of its workflow's and project's concurrency limits (the claim counts
#: exactly these), and only its worker can stop it.
IN_FLIGHT_RUN_STATES: frozenset[RunState] = run_sources(RunEvent.LOSE)
