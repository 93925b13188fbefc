"""``run:reports`` (Fulmen's): several of one run's reports in one frame, stored as one unit.

Why: a trivial run reports eight times (log lines, ``run:start``, more lines, ``step:start``,
``step:complete``, its status line, ``run:complete``), and each report on its own is a round
trip and a commit on the coordinator. Most of them are ready at the same moment (the child
emits a step's end and the run's end together), so a worker that has several queued sends
them as one ``run:reports``: each report is handled as it would have been alone, in order, in
one transaction, and answered in one reply.

Not part of Lightning's protocol: a Fulmen coordinator lists it in its ``worker:queue`` join
answer (``QueueJoined.accepts``), and a worker sends it only to a server that does, since
Lightning's run channel has no clause for it. An OpenFn ws-worker never sends it, and nothing
a ws-worker sees changes.

Payload: ``{"reports": [{"event": "run:start", "payload": {...}}, ...]}``, one to
:data:`MAX_REPORTS` reports, each one of :data:`REPORT_EVENTS` with the payload it has on its
own. Log lines go as ``run:batch_logs`` only: a frame's lines are stored together and
recognised as sent again by all of them (``append_logs(once=True)``, store/events.py), and
``run:log``'s reply would need the ids of lines stored the first time. A report that does
not decode refuses the whole frame, naming it (``reports[2].payload.timestamp``); nothing is
stored.

Reply: ``{"replies": [{"status": "ok", "response": ...}, ...]}``, one per report, in order,
each what that report would have been answered on its own (a refusal refuses that report
alone, as the worker's outbox would have passed over it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Self, TypeAlias

from msgspec import Meta, Struct

from fulmen.contract.decoding import bad, decode
from fulmen.contract.logs import RunBatchLogs
from fulmen.contract.run import RunComplete, RunStart, StepComplete, StepStart
from fulmen.contract.vocabulary import JSON, Event, JSONObject
from fulmen.errors import ContractFieldError

__all__ = ["MAX_REPORTS", "REPORT_EVENTS", "Report", "ReportReply", "RunReports"]

#: The most reports in one frame: a worker's batch of log lines is one of them.
MAX_REPORTS: Final = 64

Report: TypeAlias = RunStart | StepStart | StepComplete | RunBatchLogs | RunComplete

_KINDS: Final[Mapping[str, type[Report]]] = {
    Event.RUN_START: RunStart,
    Event.STEP_START: StepStart,
    Event.STEP_COMPLETE: StepComplete,
    Event.RUN_BATCH_LOGS: RunBatchLogs,
    Event.RUN_COMPLETE: RunComplete,
}
#: What a ``run:reports`` frame may carry.
REPORT_EVENTS: Final = frozenset(_KINDS)


class _Item(Struct):
    event: str
    payload: Any


class _Wire(Struct):
    reports: Annotated[tuple[_Item, ...], Meta(min_length=1, max_length=MAX_REPORTS)]


class RunReports(Struct, frozen=True):
    """``run:reports``; ``reports`` holds each report with its event name, in order."""

    reports: tuple[tuple[Event, Report], ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        wire = decode(value, _Wire)
        reports: list[tuple[Event, Report]] = []
        for index, item in enumerate(wire.reports):
            kind = _KINDS.get(item.event)
            if kind is None:
                allowed = ", ".join(sorted(REPORT_EVENTS))
                raise bad(f"reports[{index}].event", f"must be one of {allowed}")
            try:
                report = kind.from_wire(item.payload)
            except ContractFieldError as error:
                path = f"reports[{index}].payload" + (f".{error.field}" if error.field else "")
                raise ContractFieldError(
                    f"reports[{index}] ({item.event}): {error.message}",
                    field=path,
                    code=error.code,
                ) from error
            reports.append((Event(item.event), report))
        return cls(tuple(reports))

    def to_wire(self) -> JSONObject:
        items: list[JSON] = [
            {"event": event.value, "payload": report.to_wire()} for event, report in self.reports
        ]
        return {"reports": items}


class ReportReply(Struct, frozen=True):
    """What one report of a ``run:reports`` frame was answered: ``ok`` and the response it
    would have had on its own."""

    ok: bool
    response: Any = None

    def to_wire(self) -> JSONObject:
        return {"status": "ok" if self.ok else "error", "response": self.response}

    @classmethod
    def many_from_wire(cls, value: JSON, count: int) -> list[Self]:
        """The replies to a frame of ``count`` reports; lenient, as a worker reads what its
        server says: a reply that is missing or not understood reads as refused."""
        listed = value.get("replies") if isinstance(value, dict) else None
        items = listed if isinstance(listed, list) else []
        replies = [
            cls(item.get("status") == "ok", item.get("response"))
            if isinstance(item, dict)
            else cls(False, None)
            for item in items[:count]
        ]
        return replies + [cls(False, None)] * (count - len(replies))
