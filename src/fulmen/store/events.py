"""What a worker reports about a run (spec §5.6–§5.10), each as one checked transition.

Every function reads the run (or step) under the transaction's write lock, asks
``fulmen.lifecycle`` whether the event is legal in its current state, and only then writes,
with ``WHERE state = <the state read>`` as a second guard. An illegal event raises
TransitionError and the transaction is rolled back: nothing changes. A run that reaches a
final state is handed to ``fulmen.store.endings`` in the same transaction (its retry, the
wiping of an input that is not kept).

Log lines have no state to check a resent copy against, and OpenFn's ws-worker gives them no
id; :func:`append_logs` recognises a frame sent again by what it holds (see there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from datetime import datetime

import orjson

from fulmen.errors import ConflictError, InputError, NotFoundError, StoreError
from fulmen.lifecycle import (
    CancelAction,
    RunEvent,
    RunState,
    StepEvent,
    StepState,
    cancel_action,
    run_transition,
    step_transition,
)
from fulmen.store import snapshots
from fulmen.store.dataclips import insert_dataclip, insert_wiped
from fulmen.store.db import Row, Tx, utf8_size
from fulmen.store.endings import after_end
from fulmen.store.models.dataclips import DataclipType, NewDataclip
from fulmen.store.models.runs import (
    LOG_LEVELS,
    LogLine,
    RunCompletion,
    RunReport,
    RunStart,
    StepCompletion,
    StepStart,
)

__all__ = [
    "append_logs",
    "cancel_run",
    "complete_run",
    "complete_step",
    "frame_digest",
    "join_run",
    "record_frame",
    "start_run",
    "start_step",
]

#: Spec §5.9: a log line's source is at most this long.
MAX_SOURCE = 8


async def join_run(tx: Tx, run_id: str, now: datetime) -> None:
    """A worker joined ``run:<id>``: the run can no longer be rolled back (spec §4.6)."""
    run = await _lock_run(tx, run_id)
    await _apply(tx, "join_run", run, RunEvent.JOIN, {"now": now})


async def start_run(tx: Tx, run_id: str, started_at: datetime) -> None:
    await _start_run(tx, await _lock_run(tx, run_id), started_at)


async def _start_run(tx: Tx, run: Row, started_at: datetime) -> RunState:
    return await _apply(tx, "start_run", run, RunEvent.START, {"started_at": started_at})


async def complete_run(tx: Tx, run_id: str, completion: RunCompletion, now: datetime) -> None:
    await _complete_run(tx, await _lock_run(tx, run_id), completion, now)


async def _complete_run(
    tx: Tx, run: Row, completion: RunCompletion, now: datetime, made: Set[str] = frozenset()
) -> RunState:
    """``made``: dataclips this transaction inserted in the run's project, not checked."""
    run_id = run["id"]
    reason = completion.reason
    to_state = run_transition(_state(run), RunEvent.COMPLETE, reason.reason, what=f"run {run_id}")
    if completion.final_dataclip_id is not None and completion.final_dataclip_id not in made:
        await _check_dataclip(tx, completion.final_dataclip_id, run, "final_dataclip_id")
    await _update(
        tx,
        "complete_run",
        run,
        {
            "to_state": to_state,
            "error_type": reason.error_type,
            "error_message": reason.error_message,
            "final_dataclip_id": completion.final_dataclip_id,
            "finished_at": completion.timestamp or now,
        },
    )
    await after_end(tx, run, to_state, now)
    return to_state


async def cancel_run(tx: Tx, run_id: str, now: datetime) -> CancelAction:
    """A queued run is cancelled now; of a run in flight, the cancel is recorded as asked
    (its worker is told by the coordinator); a final run refuses (TransitionError)."""
    run = await _lock_run(tx, run_id)
    action = cancel_action(_state(run), what=f"run {run_id}")
    if action is CancelAction.NOW:
        await _apply(tx, "cancel_run", run, RunEvent.CANCEL, {"now": now})
        await after_end(tx, run, RunState.CANCELLED, now)
    else:
        await _update(tx, "request_cancel", run, {"now": now})
    return action


async def start_step(tx: Tx, run_id: str, step: StepStart, now: datetime) -> None:
    """Spec §5.7: a step of a job of the run's snapshot, with its input if there was one."""
    await _start_step(tx, await _lock_run(tx, run_id), step, now)


async def _start_step(tx: Tx, run: Row, step: StepStart, now: datetime) -> None:
    run_id = run["id"]
    run_transition(_state(run), RunEvent.STEP, what=f"run {run_id}")
    if step.job_id not in (await snapshots.read(tx, run["snapshot_id"])).job_ids:
        raise NotFoundError(
            f"job {step.job_id} does not exist in the workflow of run {run_id}", field="job_id"
        )
    if step.input_dataclip_id is not None:
        await _check_dataclip(tx, step.input_dataclip_id, run, "input_dataclip_id")
    if await tx.fetchone("lock_step", {"id": step.step_id}) is not None:
        raise ConflictError(f"step {step.step_id} already exists", field="step_id")
    await tx.execute(
        "insert_step",
        {
            "id": step.step_id,
            "run_id": run_id,
            "job_id": step.job_id,
            "input_dataclip_id": step.input_dataclip_id,
            "started_at": step.timestamp or now,
        },
    )


async def complete_step(tx: Tx, run_id: str, completion: StepCompletion, now: datetime) -> None:
    """Spec §5.8: the step's exit reason, and its output stored, wiped or withheld."""
    await _complete_step(tx, await _lock_run(tx, run_id), completion, now)


async def _complete_step(
    tx: Tx, run: Row, completion: StepCompletion, now: datetime, known: StepState | None = None
) -> StepState:
    """``known``: the state of a step of the run that this transaction wrote, not read."""
    run_id = run["id"]
    run_transition(_state(run), RunEvent.STEP, what=f"run {run_id}")
    state = await _step_state(tx, run_id, completion.step_id) if known is None else known
    reason = completion.reason
    to_state = step_transition(
        state, StepEvent.COMPLETE, reason.reason, what=f"step {completion.step_id}"
    )
    output_id = completion.output_dataclip_id
    if output_id is None and completion.output is not None:
        raise InputError("step:complete: an output_dataclip needs its output_dataclip_id")
    if output_id is not None and completion.output is not None:
        output = NewDataclip(DataclipType.STEP_RESULT, completion.output, id=output_id)
        await insert_dataclip(tx, run["project_id"], output, now)
    elif output_id is not None:
        await insert_wiped(tx, run["project_id"], output_id, DataclipType.STEP_RESULT, now)
    changed = await tx.execute(
        "complete_step",
        {
            "id": completion.step_id,
            "exit_reason": to_state,
            "error_type": reason.error_type,
            "error_message": reason.error_message,
            "output_dataclip_id": output_id,
            "finished_at": completion.timestamp or now,
        },
    )
    if changed != 1:
        raise StoreError(f"step {completion.step_id} changed while it was being completed")
    return to_state


async def _step_state(tx: Tx, run_id: str, step_id: str) -> StepState:
    """The state of the run's step ``step_id``, locked for the rest of this transaction."""
    step = await tx.fetchone("lock_step", {"id": step_id})
    if step is None or step["run_id"] != run_id:
        raise NotFoundError(f"step {step_id} is not a step of run {run_id}", field="step_id")
    return StepState(step["exit_reason"] or StepState.RUNNING)


async def record_frame(
    tx: Tx, run_id: str, reports: Sequence[RunReport], lines: Sequence[LogLine], now: datetime
) -> None:
    """The reports of one frame, in order, each checked and written as its own function
    (:func:`start_run`, :func:`start_step`, :func:`complete_step`, :func:`complete_run`)
    would, then ``lines`` as :func:`append_logs` with ``once`` would store them: the run is
    read and locked once, its state carried from one report to the next. What the frame
    itself wrote is not read back: the steps it started (their state), the dataclips it
    stored (in the run's project), the ids of its lines (a frame's replies do not name
    them). The first refusal raises (and the transaction is rolled back by the caller)."""
    run = dict(await _lock_run(tx, run_id))
    steps: dict[str, StepState] = {}
    made: set[str] = set()
    for report in reports:
        if isinstance(report, RunStart):
            run["state"] = await _start_run(tx, run, report.timestamp or now)
        elif isinstance(report, StepStart):
            await _start_step(tx, run, report, now)
            steps[report.step_id] = StepState.RUNNING
        elif isinstance(report, StepCompletion):
            known = steps.get(report.step_id)
            steps[report.step_id] = await _complete_step(tx, run, report, now, known)
            if report.output_dataclip_id is not None:
                made.add(report.output_dataclip_id)
        else:
            run["state"] = await _complete_run(tx, run, report, now, made)
    if lines and await _admitted(tx, run_id, lines, once=True, known_steps=steps.keys()):
        await tx.execute_each("insert_log", _log_rows(run_id, lines))  # no ids: none asked


async def append_logs(
    tx: Tx, run_id: str, lines: Sequence[LogLine], *, once: bool = False
) -> list[str]:
    """Spec §5.9: every line is checked before any is written; all or nothing.

    ``once``: the lines are one frame from a worker, which sends it again when its reply was
    lost (the coordinator restarted, the socket dropped), to this coordinator or another one
    on the same database. A worker sends a run's events one at a time, each after the reply
    to the one before, so a frame sent again can only be the *last* frame stored for its run.
    The run's log head (schema 0005) holds a digest of that frame: the same digest again
    stores nothing, and the ids returned are those of the lines stored the first time.
    Updating the head takes the row's lock until commit, so two coordinators handling the
    same frame at once store it once. What it cannot tell apart is a new frame identical to
    the one before it down to every line's microsecond, which a worker does not send.
    The head's one statement also finds the run, so a frame costs no statement more than
    before.
    """
    if not await _admitted(tx, run_id, lines, once=once):
        return await _stored_frame(tx, run_id, lines)
    rows = await tx.fetch_each("insert_log", _log_rows(run_id, lines))
    return [str(row["id"]) for row in rows]  # RETURNING, one per line


async def _admitted(
    tx: Tx,
    run_id: str,
    lines: Sequence[LogLine],
    *,
    once: bool,
    known_steps: Set[str] = frozenset(),
) -> bool:
    """Check ``lines`` for :func:`append_logs` (``once``: made the run's last frame); false
    for a frame stored before, whose lines are not stored again. ``known_steps``: steps of
    the run this transaction started, not looked up."""
    for index, line in enumerate(lines):
        _check_line(index, line)
    if once and lines:
        if not await _mark_log_frame(tx, run_id, lines):
            return False
    else:
        await _check_run(tx, run_id)
    step_ids = sorted(
        {line.step_id for line in lines if line.step_id is not None} - set(known_steps)
    )
    if step_ids:
        rows = await tx.fetchall("run_steps_among", {"run_id": run_id, "ids": step_ids})
        unknown = sorted(set(step_ids) - {row["id"] for row in rows})
        if unknown:
            raise NotFoundError(
                f"step {unknown[0]} must be associated with the run {run_id}", field="step_id"
            )
    return True


def _log_rows(run_id: str, lines: Sequence[LogLine]) -> list[dict[str, object]]:
    return [
        {
            "run_id": run_id,
            "step_id": line.step_id,
            "source": line.source,
            "level": line.level,
            "message": line.message,
            "logged_at": line.timestamp,
        }
        for line in lines
    ]


async def _mark_log_frame(tx: Tx, run_id: str, lines: Sequence[LogLine]) -> bool:
    """Make ``lines`` the run's last frame (its log head), adding their messages' bytes to
    the run's (which bound the batches that delete its history, batches.py); false if they
    already were."""
    params = {
        "run_id": run_id,
        "digest": frame_digest(lines),
        "bytes": sum(utf8_size(line.message) for line in lines),
    }
    if await tx.fetchone("advance_log_head", params):
        return True
    await _check_run(tx, run_id)
    return False


def frame_digest(lines: Sequence[LogLine]) -> bytes:
    """What identifies a frame: every field of every line, in order. Taken of the lines as
    they are stored (scrubbed), so the digest says nothing the stored lines do not."""
    fields = [
        (line.step_id, line.timestamp, line.source, line.level, line.message) for line in lines
    ]
    return hashlib.blake2b(orjson.dumps(fields), digest_size=16).digest()


async def _check_run(tx: Tx, run_id: str) -> None:
    if await tx.fetchone("get_run", {"id": run_id}) is None:
        raise NotFoundError(f"run {run_id} does not exist", field="run_id")


async def _stored_frame(tx: Tx, run_id: str, lines: Sequence[LogLine]) -> list[str]:
    """The ids of the frame the run's log head names: the run's latest lines, since frames
    are appended one at a time under the head's lock."""
    stamps = [line.timestamp for line in lines]
    rows = await tx.fetchall(
        "latest_log_ids",
        {"run_id": run_id, "first": min(stamps), "last": max(stamps), "count": len(lines)},
    )
    return [str(row["id"]) for row in reversed(rows)]


def _check_line(index: int, line: LogLine) -> None:
    where = f"logs[{index}]"
    if not isinstance(line.message, str):
        raise InputError(f"{where}.message: expected text")
    if not isinstance(line.source, str) or len(line.source) > MAX_SOURCE:
        raise InputError(f"{where}.source: at most {MAX_SOURCE} characters, got {line.source!r}")
    if line.level not in LOG_LEVELS:
        raise InputError(
            f"{where}.level: one of {', '.join(sorted(LOG_LEVELS))}, got {line.level!r}"
        )
    if not isinstance(line.timestamp, datetime):
        raise InputError(f"{where}.timestamp: required")


async def _lock_run(tx: Tx, run_id: str) -> Row:
    """The run's state and identity, locked for the rest of this transaction."""
    run = await tx.fetchone("lock_run", {"id": run_id})
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist", field="run_id")
    return run


async def _apply(
    tx: Tx, query: str, run: Row, event: RunEvent, params: dict[str, object]
) -> RunState:
    to_state = run_transition(_state(run), event, what=f"run {run['id']}")
    await _update(tx, query, run, params)
    return to_state


async def _update(tx: Tx, query: str, run: Row, params: dict[str, object]) -> None:
    changed = await tx.execute(query, {"id": run["id"], "from_state": run["state"], **params})
    if changed != 1:
        # The lock makes this unreachable; if it ever happens, fail loudly, write nothing.
        raise StoreError(f"run {run['id']} changed while it was being updated")


async def _check_dataclip(tx: Tx, dataclip_id: str, run: Row, field: str) -> None:
    row = await tx.fetchone("dataclip_project", {"id": dataclip_id})
    if row is None or row["project_id"] != run["project_id"]:
        raise NotFoundError(f"dataclip {dataclip_id} does not exist", field=field)


def _state(run: Row) -> RunState:
    return RunState(run["state"])
