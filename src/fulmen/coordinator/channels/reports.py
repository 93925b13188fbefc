"""What a worker reports about its run (spec §5.6–§5.10), each stored with its transition.

Each function takes a decoded event and returns the reply's ``(ok, response)``; a refusal
changes nothing (the store checks the run and step state tables in the same transaction).

An event sent again after a reconnect (the first copy was stored, its reply lost) is told
apart from a conflicting one by reading what is stored: a run already ``started`` accepts
``run:start`` again, a step that exists for the same job accepts ``step:start`` again, a step
that ended with the same reason accepts ``step:complete`` again, and a run that ended in the
state the reason names (with the same error type) accepts ``run:complete`` again. Anything
else is refused as Lightning refuses it, e.g. ``{"state": ["already in completed state"]}``
for a late ``run:complete`` on a lost run (§7.5). Log lines have no state: the store keeps a
digest of each run's last frame of lines, and the same frame again is stored once, whichever
coordinator it reaches (``append_logs(once=True)``, store/events.py).

Whatever a worker reports that a job could have written (log lines, output dataclips, error
messages, the final state and webhook response kept for the webhook's caller) goes through
the run's scrubber first (memory.py, secrets.py): the child's own scrubbing is not trusted.
"""

from __future__ import annotations

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
from fulmen.errors import ConflictError, FulmenError, TransitionError
from fulmen.lifecycle import RUN_STATE_FOR_REASON, RunState
from fulmen.plan import Options
from fulmen.reasons import ExitReason
from fulmen.scrub import Scrubber
from fulmen.store import LogLine as StoredLine
from fulmen.store import RunCompletion, StepCompletion
from fulmen.store import StepStart as StoredStart

__all__ = ["Report", "record", "record_all"]

log = logging.getLogger(__name__)

Report = RunStart | StepStart | StepComplete | RunLog | RunBatchLogs | RunComplete

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Keys never stored in an output dataclip: the worker strips them too (§8.4), but a
#: dataclip must not hold a credential even if a worker forgot.
_SECRET_KEYS: Final = ("configuration",)


async def record(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, event: str, report: Report
) -> Outcome:
    """Store ``report`` for ``run_id``; the reply to send."""
    try:
        if isinstance(report, RunStart):
            return await _run_start(c, run_id, report)
        if isinstance(report, StepStart):
            return await _step_start(c, run_id, report)
        if isinstance(report, StepComplete):
            return await _step_complete(c, run_id, memory, options, report)
        if isinstance(report, RunLog | RunBatchLogs):
            return await _logs(c, run_id, memory, report)
        return await _run_complete(c, run_id, memory, report)
    except FulmenError as error:
        log.info("run %s: %s refused: %s", run_id, event, error)
        return False, error_response(event, error)


def wire_time(timestamp: str | None) -> datetime | None:
    """A wire timestamp (13-digit ms or 16-digit µs string, §8.3) as an aware datetime."""
    if timestamp is None:
        return None
    return _EPOCH + timedelta(microseconds=parse_timestamp(timestamp))


async def _run_start(c: Coordinator, run_id: str, report: RunStart) -> Outcome:
    try:
        await c.store.start_run(run_id, timestamp=wire_time(report.timestamp))
    except TransitionError as error:
        if error.state != RunState.STARTED:
            raise
    return True, None


async def _step_start(c: Coordinator, run_id: str, report: StepStart) -> Outcome:
    step = StoredStart(
        step_id=report.step_id,
        job_id=report.job_id,
        input_dataclip_id=report.input_dataclip_id,
        timestamp=wire_time(report.timestamp),
    )
    try:
        await c.store.start_step(run_id, step)
    except ConflictError:
        stored = {s.id: s for s in (await c.store.get_run(run_id)).steps}.get(report.step_id)
        if stored is None or stored.job_id != report.job_id:
            raise
    return True, {"step_id": report.step_id}


async def _step_complete(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, report: StepComplete
) -> Outcome:
    output_id = report.output_dataclip_id
    if report.output_dataclip is not None and output_id is None:
        return False, {"output_dataclip_id": ["can't be blank when output_dataclip is given"]}
    output = _output(c, run_id, memory.scrubber, options, report)
    if isinstance(output, tuple):
        return output
    completion = StepCompletion(
        step_id=report.step_id,
        reason=_scrubbed(memory.scrubber, report.exit),
        output_dataclip_id=output_id,
        output=output,
        timestamp=wire_time(report.timestamp),
    )
    try:
        await c.store.complete_step(run_id, completion)
    except TransitionError:
        stored = {s.id: s for s in (await c.store.get_run(run_id)).steps}.get(report.step_id)
        if stored is None or stored.state.value != report.exit.reason.value:
            raise
    if report.webhook_response is not None:
        memory.webhook_response = memory.scrubber.value(report.webhook_response)
    return True, {"step_id": report.step_id}


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


async def record_all(
    c: Coordinator, run_id: str, memory: RunMemory, options: Options, reports: RunReports
) -> Outcome:
    """Store the reports of a ``run:reports`` frame, each as :func:`record` would, as one unit
    (``Store.together``); the reply lists each one's outcome.

    Its log lines, all of them together, are the frame the run's log head is checked against:
    the same frame sent again stores its state changes as any resent report does (the state
    tables tell) and none of its lines twice.
    """
    stored = {
        index: [_stored(memory, line) for line in report.logs]
        for index, (_event, report) in enumerate(reports.reports)
        if isinstance(report, RunBatchLogs)
    }
    every_line = [line for lines in stored.values() for line in lines]
    outcomes: list[Outcome] = []
    try:
        async with c.store.together():
            fresh = not every_line or await c.store.mark_log_frame(run_id, every_line)
            for index, (event, report) in enumerate(reports.reports):
                if index in stored:
                    outcomes.append(await _append(c, run_id, event, stored[index], fresh))
                else:
                    outcomes.append(await record(c, run_id, memory, options, event, report))
    except FulmenError as error:
        log.info("run %s: %s refused: %s", run_id, Event.RUN_REPORTS, error)
        return False, error_response(Event.RUN_REPORTS, error)
    replies: list[JSON] = [ReportReply(ok, response).to_wire() for ok, response in outcomes]
    return True, {"replies": replies}


async def _append(
    c: Coordinator, run_id: str, event: str, lines: list[StoredLine], fresh: bool
) -> Outcome:
    if not fresh:  # the frame was stored before; its reply was lost
        return True, {}
    try:
        await c.store.append_logs(run_id, lines)
    except FulmenError as error:
        log.info("run %s: %s refused: %s", run_id, event, error)
        return False, error_response(event, error)
    return True, {}


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
    completion = RunCompletion(
        reason=_scrubbed(memory.scrubber, report.exit),
        final_dataclip_id=report.final_dataclip_id,
        timestamp=wire_time(report.timestamp),
    )
    try:
        await c.store.complete_run(run_id, completion)
    except TransitionError:
        run = (await c.store.get_run(run_id)).run
        same = RUN_STATE_FOR_REASON.get(report.exit.reason) == run.state
        if not same or run.error_type != report.exit.error_type:
            raise
    memory.final_state = memory.scrubber.value(report.final_state)
    log.info("run %s completed: %s", run_id, report.exit.reason.value)
    return True, None


def _scrubbed(scrubber: Scrubber, reason: ExitReason) -> ExitReason:
    if not reason.error_message:
        return reason
    return dataclasses.replace(reason, error_message=scrubber.text(reason.error_message))
