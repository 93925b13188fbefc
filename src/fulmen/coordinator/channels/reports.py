"""What a worker reports about its run (spec §5.6–§5.10), each stored with its transition.

Each function takes a decoded event and returns the reply's ``(ok, response)``; a refusal
changes nothing (the store checks the run and step state tables in the same transaction).

An event sent again after a reconnect (the first copy was stored, its reply lost) is told
apart from a conflicting one by reading what is stored: a run already ``started`` accepts
``run:start`` again, a step that exists for the same job accepts ``step:start`` again, a step
that ended with the same reason accepts ``step:complete`` again, and a run that ended in the
state the reason names (with the same error type) accepts ``run:complete`` again. Anything
else is refused as Lightning refuses it, e.g. ``{"state": ["already in completed state"]}``
for a late ``run:complete`` on a lost run (§7.5). A ``run:reports`` frame may hold a whole
run and be sent again after the run ended: in a frame, ``run:start`` is also taken again
from a run that did start, and ``step:start`` for a step that exists, whatever the run's
state now. Log lines have no state: the store keeps a
digest of each run's last frame of lines, and the same frame again is stored once, whichever
coordinator it reaches (``append_logs(once=True)``, store/events.py).

Whatever a worker reports that a job could have written (log lines, output dataclips, error
messages, the final state and webhook response kept for the webhook's caller) goes through
the run's scrubber first (memory.py, secrets.py): the child's own scrubbing is not trusted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from fulmen.contract import (
    JSON,
    Event,
    LogLine,
    ReportReply,
    RunBatchLogs,
    RunComplete,
    RunLog,
    RunReports,
    RunStart,
    StepComplete,
    StepStart,
    parse_timestamp,
)
from fulmen.coordinator.channels.answers import error_response
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.logtext import join_message
from fulmen.coordinator.memory import Outcome, RunMemory
from fulmen.errors import ConflictError, FulmenError, NotFoundError, StoreError, TransitionError
from fulmen.lifecycle import RUN_STATE_FOR_REASON, RunState
from fulmen.plan import Options
from fulmen.reasons import ExitReason
from fulmen.scrub import Scrubber
from fulmen.store import LogLine as StoredLine
from fulmen.store import RunCompletion, RunReport, StepCompletion
from fulmen.store import RunStart as StoredRunStart
from fulmen.store import StepStart as StoredStart

__all__ = ["Report", "record", "record_all"]

log = logging.getLogger(__name__)

Report = RunStart | StepStart | StepComplete | RunLog | RunBatchLogs | RunComplete

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Keys never stored in an output dataclip: the worker strips them too (§8.4), but a
#: dataclip must not hold a credential even if a worker forgot.
_SECRET_KEYS: Final = ("configuration",)


async def record(
    c: Coordinator,
    run_id: str,
    memory: RunMemory,
    options: Options,
    event: str,
    report: Report,
    *,
    in_frame: bool = False,
) -> Outcome:
    """Store ``report`` for ``run_id``; the reply to send. ``in_frame``: a report of a
    ``run:reports`` frame, whose store failures fail the frame (it is tried again whole)."""
    try:
        if isinstance(report, RunStart):
            return await _run_start(c, run_id, report, in_frame)
        if isinstance(report, StepStart):
            return await _step_start(c, run_id, report, in_frame)
        if isinstance(report, StepComplete):
            return await _step_complete(c, run_id, memory, options, report)
        if isinstance(report, RunLog | RunBatchLogs):
            return await _logs(c, run_id, memory, report)
        return await _run_complete(c, run_id, memory, report)
    except FulmenError as error:
        if in_frame and _store_failed(error):
            raise
        log.info("run %s: %s refused: %s", run_id, event, error)
        return False, error_response(event, error)


def wire_time(timestamp: str | None) -> datetime | None:
    """A wire timestamp (13-digit ms or 16-digit µs string, §8.3) as an aware datetime."""
    if timestamp is None:
        return None
    return _EPOCH + timedelta(microseconds=parse_timestamp(timestamp))


async def _run_start(c: Coordinator, run_id: str, report: RunStart, in_frame: bool) -> Outcome:
    """A frame sent again may hold the run's start and its end: its start is taken again
    whenever the run did start, even if it has ended since (alone, only while it runs)."""
    try:
        await c.store.start_run(run_id, timestamp=wire_time(report.timestamp))
    except TransitionError as error:
        if error.state == RunState.STARTED:
            return True, None
        if not in_frame or (await c.store.peek_run(run_id)).started_at is None:
            raise
    return True, None


async def _step_start(c: Coordinator, run_id: str, report: StepStart, in_frame: bool) -> Outcome:
    """A step that exists for the same job is taken again; in a frame, also once its run has
    ended (see :func:`_run_start`)."""
    step = _step(report)
    try:
        await c.store.start_step(run_id, step)
    except (ConflictError, TransitionError) as error:
        if isinstance(error, TransitionError) and not in_frame:
            raise
        stored = {s.id: s for s in (await c.store.get_run(run_id)).steps}.get(report.step_id)
        if stored is None or stored.job_id != report.job_id:
            raise
    return True, {"step_id": report.step_id}


def _step(report: StepStart) -> StoredStart:
    return StoredStart(
        step_id=report.step_id,
        job_id=report.job_id,
        input_dataclip_id=report.input_dataclip_id,
        timestamp=wire_time(report.timestamp),
    )


async def _step_complete(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, report: StepComplete
) -> Outcome:
    completion = _step_completion(c, run_id, memory, options, report)
    if isinstance(completion, tuple):
        return completion
    try:
        await c.store.complete_step(run_id, completion)
    except TransitionError:
        stored = {s.id: s for s in (await c.store.get_run(run_id)).steps}.get(report.step_id)
        if stored is None or stored.state.value != report.exit.reason.value:
            raise
    _step_completed(memory, report)
    return True, {"step_id": report.step_id}


def _step_completed(memory: RunMemory, report: StepComplete) -> None:
    """What the run's memory keeps of a completed step, once stored: its webhook reply."""
    if report.webhook_response is not None:
        memory.webhook_response = memory.scrubber.value(report.webhook_response)


def _step_completion(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, report: StepComplete
) -> StepCompletion | Outcome:
    """What the store is told of ``report``, or the refusal of a report the store need not
    see."""
    output_id = report.output_dataclip_id
    if report.output_dataclip is not None and output_id is None:
        return False, {"output_dataclip_id": ["can't be blank when output_dataclip is given"]}
    output = _output(c, run_id, memory.scrubber, options, report)
    if isinstance(output, tuple):
        return output
    return StepCompletion(
        step_id=report.step_id,
        reason=_scrubbed(memory.scrubber, report.exit),
        output_dataclip_id=output_id,
        output=output,
        timestamp=wire_time(report.timestamp),
    )


def _output(
    c: Coordinator, run_id: str, scrubber: Scrubber, options: Options, report: StepComplete
) -> JSON | tuple[bool, JSON]:
    """The output state to store; ``None`` keeps only its id (a wiped dataclip): the run does
    not save dataclips (§5.8), or the output is larger than the coordinator stores."""
    text = report.output_dataclip
    if text is None or not options.output_dataclips:
        return None
    limit = int(c.settings.max_dataclip_size_mb * 1024 * 1024)
    if len(text.encode()) > limit:
        log.warning(
            "run %s: output of step %s is over %d bytes; withheld", run_id, report.step_id, limit
        )
        return None
    try:
        output: JSON = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, {"output_dataclip": ["is not valid JSON"]}
    if isinstance(output, dict) and any(key in output for key in _SECRET_KEYS):
        output = {k: v for k, v in output.items() if k not in _SECRET_KEYS}
    return scrubber.value(output)  # type: ignore[no-any-return]


#: A frame whose transaction failed in the store (a commit, a busy database, a pool timeout)
#: is tried again this many times, after these pauses: it is safe, a frame stored again
#: stores nothing twice, and the worker passes over a refused frame, whole.
FRAME_RETRIES: Final = (0.05, 0.25)


async def record_all(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, reports: RunReports
) -> Outcome:
    """Store the reports of a ``run:reports`` frame, each as :func:`record` would, as one unit;
    the reply lists each one's outcome. A frame whose reports are all taken, as a run that
    goes well sends, is one write that locks the run once (``Store.record_frame``); one
    with a report refused is stored report by report in a ``Store.together`` block.

    The state changes go first, in order, each recognised when sent again by the state
    tables. Then every line of the frame goes in one write with the run's log head (their
    digest, ``append_logs(once=True)``): the same frame sent again stores none of them twice,
    and a frame cut short (a commit that failed, a handler cancelled on shutdown) has stored
    either all its lines and their head or neither. Lines are read back in time order, so
    storing them after the state changes changes nothing a reader sees.
    """
    for pause in (*FRAME_RETRIES, None):
        try:
            return await _record_all(c, run_id, memory, options, reports)
        except FulmenError as error:
            if pause is None or not _store_failed(error):
                log.info("run %s: %s refused: %s", run_id, Event.RUN_REPORTS, error)
                return False, error_response(Event.RUN_REPORTS, error)
            log.warning("run %s: a frame of reports failed in the store (%s); again", run_id, error)
            await asyncio.sleep(pause)
    raise AssertionError("the last try returns")  # pragma: no cover


async def _record_all(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, reports: RunReports
) -> Outcome:
    """One try of :func:`record_all`: the frame whole if every report is taken, else one
    report at a time."""
    whole = await _record_whole(c, run_id, memory, options, reports)
    if whole is not None:
        return whole
    return await _record_each(c, run_id, memory, options, reports)


async def _record_whole(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, reports: RunReports
) -> Outcome | None:
    """The frame in one write that reads and locks the run once (``Store.record_frame``), as
    a frame of a run that goes well is: every report taken, each answered as
    :func:`record` answers one that was taken. ``None`` when a report is refused, with
    nothing stored: :func:`_record_each` then finds out which, and why (a frame sent
    again, whose reports the state tables recognise, is one of those)."""
    changes: list[RunReport] = []
    lines: list[StoredLine] = []
    replies: list[JSON] = []
    for _event, report in reports.reports:
        if isinstance(report, RunBatchLogs):
            lines.extend(_stored(memory, line) for line in report.logs)
            replies.append(ReportReply(True, {}).to_wire())
            continue
        change = _change(c, run_id, memory, options, report)
        if change is None:
            return None
        changes.append(change[0])
        replies.append(ReportReply(True, change[1]).to_wire())
    try:
        await c.store.record_frame(run_id, changes, lines)
    except FulmenError as error:
        if _store_failed(error):
            raise  # the whole frame is tried again
        return None
    for _event, report in reports.reports:
        if isinstance(report, StepComplete):
            _step_completed(memory, report)
        elif isinstance(report, RunComplete):
            _completed(run_id, memory, report)
    return True, {"replies": replies}


def _change(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, report: Report
) -> tuple[RunReport, JSON] | None:
    """What the store is told of a report that changes a state, and the answer it gets when
    taken; ``None`` for one refused before the store sees it (or not of a frame)."""
    if isinstance(report, RunStart):
        return StoredRunStart(wire_time(report.timestamp)), None
    if isinstance(report, StepStart):
        return _step(report), {"step_id": report.step_id}
    if isinstance(report, StepComplete):
        completion = _step_completion(c, run_id, memory, options, report)
        if isinstance(completion, tuple):
            return None
        return completion, {"step_id": report.step_id}
    if isinstance(report, RunComplete):
        return _run_completion(memory, report), None
    return None


async def _record_each(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, reports: RunReports
) -> Outcome:
    """The frame one report at a time, each as :func:`record` stores it, in one
    ``together()`` block. What it tells the run's memory (the webhook reply, the final
    state) is put back if the frame does not commit."""
    before = (memory.webhook_response, memory.final_state)
    outcomes: dict[int, Outcome] = {}
    batches: list[int] = []
    lines: list[StoredLine] = []
    try:
        async with c.store.together():
            for index, (event, report) in enumerate(reports.reports):
                if isinstance(report, RunBatchLogs):
                    batches.append(index)
                    lines.extend(_stored(memory, line) for line in report.logs)
                else:
                    outcomes[index] = await record(
                        c, run_id, memory, options, event, report, in_frame=True
                    )
            if lines:
                appended = await _append(c, run_id, lines)
                outcomes.update((index, appended) for index in batches)
    except BaseException:
        memory.webhook_response, memory.final_state = before
        raise
    replies: list[JSON] = [
        ReportReply(*outcomes[index]).to_wire() for index in range(len(reports.reports))
    ]
    return True, {"replies": replies}


async def _append(c: Coordinator, run_id: str, lines: list[StoredLine]) -> Outcome:
    try:
        await c.store.append_logs(run_id, lines, once=True)
    except FulmenError as error:
        if _store_failed(error):
            raise  # the whole frame is tried again
        log.info("run %s: the lines of %s refused: %s", run_id, Event.RUN_REPORTS, error)
        return False, error_response(Event.RUN_BATCH_LOGS, error)
    return True, {}


def _store_failed(error: FulmenError) -> bool:
    """The database failed (a commit, a busy file, a pool timeout), not the report: what a
    frame is tried again for."""
    return isinstance(error, StoreError) and not isinstance(error, NotFoundError | ConflictError)


async def _logs(
    c: Coordinator, run_id: str, memory: RunMemory, report: RunLog | RunBatchLogs
) -> Outcome:
    lines = [report.line] if isinstance(report, RunLog) else list(report.logs)
    ids = await c.store.append_logs(run_id, [_stored(memory, line) for line in lines], once=True)
    if isinstance(report, RunLog):
        return True, {"log_line_id": ids[0]}
    return True, {}


def _stored(memory: RunMemory, line: LogLine) -> StoredLine:
    timestamp = wire_time(line.timestamp)
    assert timestamp is not None  # the contract requires a log line's timestamp
    return StoredLine(
        message=memory.scrubber.text(join_message(line.message)),
        timestamp=timestamp,
        source=line.source,
        level=line.level.value,
        step_id=line.step_id,
    )


async def _run_complete(
    c: Coordinator, run_id: str, memory: RunMemory, report: RunComplete
) -> Outcome:
    try:
        await c.store.complete_run(run_id, _run_completion(memory, report))
    except TransitionError:
        run = (await c.store.get_run(run_id)).run
        same = RUN_STATE_FOR_REASON.get(report.exit.reason) == run.state
        if not same or run.error_type != report.exit.error_type:
            raise
    _completed(run_id, memory, report)
    return True, None


def _run_completion(memory: RunMemory, report: RunComplete) -> RunCompletion:
    return RunCompletion(
        reason=_scrubbed(memory.scrubber, report.exit),
        final_dataclip_id=report.final_dataclip_id,
        timestamp=wire_time(report.timestamp),
    )


def _completed(run_id: str, memory: RunMemory, report: RunComplete) -> None:
    """What the run's memory keeps of its completion, once stored (for a webhook's reply)."""
    memory.final_state = memory.scrubber.value(report.final_state)
    log.info("run %s completed: %s", run_id, report.exit.reason.value)


def _scrubbed(scrubber: Scrubber, reason: ExitReason) -> ExitReason:
    if not reason.error_message:
        return reason
    return dataclasses.replace(reason, error_message=scrubber.text(reason.error_message))
