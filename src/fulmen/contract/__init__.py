"""The Lightning worker contract: event names, topics, and every payload and reply of the
``worker:queue`` and ``run:<id>`` channels as frozen values (spec §4, §5, §7, §8).

Both the coordinator and the worker import this package and never each other (STYLE.md P3).
One module per part of the wire:

========================  ===========================================================
``vocabulary``            event names, topics, log levels, wire reasons, JSON
``decoding``              typed decoding with msgspec and the errors of a misfit; timestamps
``queue``                 ``worker:queue``: its join, ``claim``, ``run:refuse``
``fetches``               joining ``run:<id>`` and the plan, dataclip and credential fetches
``run``                   ``run:start``, ``step:start``, ``step:complete``, ``run:complete``
``logs``                  ``run:log`` and ``run:batch_logs``
``reports``               ``run:reports``: several reports in one frame (Fulmen's own)
``requests``              decoding whatever a worker sends on ``run:<id>``
``replies``               Lightning's ``ok`` replies to steps and logs, and ``error`` replies
========================  ===========================================================

Every name is imported from here (``from fulmen.contract import StepComplete``); the modules
are how the package is laid out, not part of its interface.

Payloads are decoded once, at the edge, with ``from_wire``: each value is a frozen
``msgspec.Struct``, and decoding is msgspec's typed conversion of the JSON value, which is what
keeps the hot path cheap. A payload that does not fit raises
:class:`~fulmen.errors.ContractFieldError` naming the field (``field`` holds its path, e.g.
``logs[2].level``). ``to_wire`` gives back the exact dict a real peer sends, keys in the order
ws-worker 1.25.0 writes them, so that a decoded recorded payload encodes to the same bytes.

Absent versus null: a field that ws-worker omits when it has no value (``input_dataclip_id``,
``step_id`` of a log line, ``final_dataclip_id``, ``mem``…) is ``None`` here and omitted on
encode; an explicit JSON ``null`` in such a field decodes the same way, as Lightning treats the
two alike. Fields that are always present and may be null (``worker_name``, ``error_type``,
``error_message``) are always encoded.

Decisions where the spec leaves room:

* Validation follows Lightning, not lightning-mock: log lines need a non-empty ``message``, a
  ``source`` of at most 8 characters, a known ``level`` and a ``timestamp`` (§5.9); unknown
  keys are ignored (workers must ignore unknown claims; the mock's rejection of unknown keys in
  ``run:complete`` is a mock strictness).
* Timestamps are decimal strings of 13 digits (ms) or 16 digits (µs), as Lightning parses them
  (§8.3); an integer is taken as milliseconds and kept as its decimal string.
* ``claim.queues`` is optional and defaults to ``["manual", "*"]`` (§4.2, §11: assumed).
* The ``fetch:plan`` reply is kept as a JSON object: ``fulmen.plan`` models the plan.
* ``fetch:dataclip`` replies are bytes, whether they came as a binary frame (Lightning) or as a
  JSON array of byte values (lightning-mock, §5.5).
"""

from fulmen.contract.decoding import format_timestamp, parse_timestamp
from fulmen.contract.fetches import (
    CLAIM_FETCHES,
    FETCHABLE,
    JOIN_FETCHES,
    JOIN_REPORTS,
    CredentialReply,
    DataclipReply,
    FetchCredential,
    FetchDataclip,
    FetchPlan,
    RunJoin,
    RunJoined,
    decode_plan_reply,
)
from fulmen.contract.logs import LogLine, RunBatchLogs, RunLog
from fulmen.contract.queue import (
    ClaimedRun,
    ClaimReply,
    ClaimRequest,
    QueueJoin,
    QueueJoined,
    RunRefusal,
)
from fulmen.contract.replies import ErrorReply, LogReply, StepReply
from fulmen.contract.reports import MAX_REPORTS, REPORT_EVENTS, Report, ReportReply, RunReports
from fulmen.contract.requests import RunRequest, decode_run_request
from fulmen.contract.run import Mem, RunComplete, RunStart, StepComplete, StepStart
from fulmen.contract.vocabulary import (
    API_VERSION,
    DEFAULT_QUEUES,
    JSON,
    MAX_SOURCE_LENGTH,
    WIRE_REASONS,
    WORKER_QUEUE,
    Event,
    JSONObject,
    LogLevel,
    run_id_of,
    run_topic,
)
from fulmen.reasons import ExitReason, Reason

__all__ = [
    "API_VERSION",
    "CLAIM_FETCHES",
    "DEFAULT_QUEUES",
    "FETCHABLE",
    "JOIN_FETCHES",
    "JOIN_REPORTS",
    "JSON",
    "MAX_REPORTS",
    "MAX_SOURCE_LENGTH",
    "REPORT_EVENTS",
    "WIRE_REASONS",
    "WORKER_QUEUE",
    "ClaimReply",
    "ClaimRequest",
    "ClaimedRun",
    "CredentialReply",
    "DataclipReply",
    "ErrorReply",
    "Event",
    "ExitReason",
    "FetchCredential",
    "FetchDataclip",
    "FetchPlan",
    "JSONObject",
    "LogLevel",
    "LogLine",
    "LogReply",
    "Mem",
    "QueueJoin",
    "QueueJoined",
    "Reason",
    "Report",
    "ReportReply",
    "RunBatchLogs",
    "RunComplete",
    "RunJoin",
    "RunJoined",
    "RunLog",
    "RunRefusal",
    "RunReports",
    "RunRequest",
    "RunStart",
    "StepComplete",
    "StepReply",
    "StepStart",
    "decode_plan_reply",
    "decode_run_request",
    "format_timestamp",
    "parse_timestamp",
    "run_id_of",
    "run_topic",
]
