"""The Lightning worker contract: event names, topics, and every payload and reply of the
``worker:queue`` and ``run:<id>`` channels as frozen values (spec §4, §5, §7, §8).

Both the coordinator and the worker import this module and never each other (STYLE.md P3).
Payloads are decoded once, at the edge, with ``from_wire``; a payload that does not fit raises
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

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Self, TypeAlias

import orjson

from fulmen.errors import ContractError, ContractFieldError
from fulmen.reasons import ExitReason, Reason

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
JSONObject: TypeAlias = "dict[str, JSON]"

__all__ = [
    "API_VERSION",
    "DEFAULT_QUEUES",
    "JSON",
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
    "RunBatchLogs",
    "RunComplete",
    "RunJoin",
    "RunLog",
    "RunRefusal",
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

API_VERSION: Final = "1.2"
"""The lexicon's API version, sent as the ``api_version`` socket parameter (§9.1)."""

WORKER_QUEUE: Final = "worker:queue"
DEFAULT_QUEUES: Final = ("manual", "*")
MAX_SOURCE_LENGTH: Final = 8


class Event(StrEnum):
    """Every Lightning event name on the two channels (Phoenix's own are in ``phoenix``)."""

    CLAIM = "claim"
    WORK_AVAILABLE = "work-available"
    FETCH_PLAN = "fetch:plan"
    FETCH_DATACLIP = "fetch:dataclip"
    FETCH_CREDENTIAL = "fetch:credential"
    RUN_START = "run:start"
    STEP_START = "step:start"
    STEP_COMPLETE = "step:complete"
    RUN_LOG = "run:log"
    RUN_BATCH_LOGS = "run:batch_logs"
    RUN_COMPLETE = "run:complete"
    #: Server push (Fulmen, issue 8): stop this run; the worker completes it with ``cancel``.
    #: Not part of Lightning's protocol: OpenFn's ws-worker binds no handler for it on the run
    #: channel and Phoenix's JS client drops events nobody bound, so there it is ignored and
    #: the run ends as it would have.
    RUN_CANCEL = "run:cancel"
    #: Worker request on ``worker:queue`` (Fulmen, issue 14): "I claimed this run but will not
    #: run it: its run token does not verify here". Sent only to a server whose join answer
    #: lists it (``QueueJoined.accepts``): Lightning's worker channel has a clause for
    #: ``claim`` alone, so anything else would crash the channel there.
    RUN_REFUSE = "run:refuse"


#: Exit reasons that may appear on the wire (§7.1): all but the server-only ``lost``.
WIRE_REASONS: Final = tuple(r for r in Reason if r is not Reason.LOST)


class LogLevel(StrEnum):
    """The levels Lightning accepts on a log line (§8.2)."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    SUCCESS = "success"
    ALWAYS = "always"


def run_topic(run_id: str) -> str:
    return f"run:{run_id}"


def run_id_of(topic: str) -> str:
    """The run id in a ``run:<id>`` topic.

    Raises:
        ContractError: ``bad_topic`` if ``topic`` is not a run topic.
    """
    prefix, _, run_id = topic.partition(":")
    if prefix != "run" or not run_id:
        raise ContractError(f"{topic!r} is not a run:<id> topic", code="bad_topic")
    return run_id


# -- reading wire objects ---------------------------------------------------------------------

_TIMESTAMP = re.compile(r"[0-9]{13}|[0-9]{16}")


class _Reader:
    """Reads the fields of one wire object; every error names the field's path."""

    def __init__(self, value: JSON, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong(path, "a JSON object", value)
        self._obj = value
        self._path = path

    def path(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def get(self, name: str) -> JSON:
        """The value, ``None`` if absent or null."""
        return self._obj.get(name)

    def has(self, name: str) -> bool:
        return name in self._obj

    def required(self, name: str) -> JSON:
        if self._obj.get(name) is None:
            raise ContractFieldError(
                f"{self.path(name)} is missing", field=self.path(name), code="missing_field"
            )
        return self._obj[name]

    def text(self, name: str) -> str:
        return _as_str(self.required(name), self.path(name))

    def opt_text(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else _as_str(value, self.path(name))

    def integer(self, name: str, *, minimum: int | None = None) -> int:
        value = self.required(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(self.path(name), "an integer", value)
        if minimum is not None and value < minimum:
            raise _bad(self.path(name), f"must be at least {minimum}")
        return value

    def opt_integer(self, name: str) -> int | None:
        return None if self.get(name) is None else self.integer(name)

    def opt_number(self, name: str) -> int | float | None:
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(self.path(name), "a number", value)
        return value

    def items(self, name: str) -> list[tuple[str, JSON]]:
        """The elements of a required array, each with its path."""
        value = self.required(name)
        if not isinstance(value, list):
            raise _wrong(self.path(name), "an array", value)
        return [(f"{self.path(name)}[{i}]", item) for i, item in enumerate(value)]

    def obj(self, name: str) -> dict[str, JSON] | None:
        value = self.get(name)
        if value is not None and not isinstance(value, dict):
            raise _wrong(self.path(name), "a JSON object", value)
        return value

    def timestamp(self, name: str) -> str:
        return _timestamp_field(self.required(name), self.path(name))

    def opt_timestamp(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else _timestamp_field(value, self.path(name))

    def enum(self, name: str, kind: Iterable[StrEnum]) -> str:
        value = self.text(name)
        choices = [member.value for member in kind]
        if value not in choices:
            listed = ", ".join(choices)
            raise _bad(self.path(name), f"must be one of {listed}, not {value!r}")
        return value


def _wrong(path: str, expected: str, value: JSON) -> ContractFieldError:
    got = "null" if value is None else type(value).__name__
    where = path or "the payload"
    return ContractFieldError(
        f"{where} must be {expected}, not {got}", field=path, code="wrong_type"
    )


def _bad(path: str, problem: str) -> ContractFieldError:
    return ContractFieldError(f"{path} {problem}", field=path, code="bad_value")


def _as_str(value: JSON, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, "a string", value)
    return value


def _timestamp_field(value: JSON, path: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**13:
        value = str(value).zfill(13)  # Lightning reads an integer as milliseconds
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise _bad(path, "must be a string of 13 (ms) or 16 (µs) digits")
    return value


def parse_timestamp(value: str) -> int:
    """Microseconds since the epoch from a wire timestamp (13-digit ms or 16-digit µs).

    Raises:
        ContractFieldError: ``bad_value`` for anything else.
    """
    text = _timestamp_field(value, "timestamp")
    return int(text) * (1000 if len(text) == 13 else 1)


def format_timestamp(microseconds: int) -> str:
    """The 16-digit µs string ws-worker sends (§8.3); never send µs as an integer."""
    return str(microseconds).zfill(16)


# -- worker:queue -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueJoin:
    """``phx_join`` payload of ``worker:queue``: informational, Lightning ignores it (§4.1)."""

    capacity: int | None = None
    queues: Mapping[str, int] | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        queues = r.obj("queues")
        slots = None if queues is None else {k: _slot(v, f"queues.{k}") for k, v in queues.items()}
        return cls(capacity=r.opt_integer("capacity"), queues=slots)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {}
        if self.capacity is not None:
            out["capacity"] = self.capacity
        if self.queues is not None:
            out["queues"] = dict(self.queues)
        return out


@dataclass(frozen=True, slots=True)
class QueueJoined:
    """The ``ok`` reply to a ``worker:queue`` join. Lightning answers ``{}`` (§4.1); a Fulmen
    coordinator adds ``accepts``, the optional events it handles, because the protocol has no
    way to ask (§5.9: ``run:batch_logs`` crashes the channel of a server without a handler).
    Reading is lenient: whatever is not a list of strings there means "nothing optional"."""

    accepts: frozenset[str] = frozenset()

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        listed = value.get("accepts") if isinstance(value, dict) else None
        if not isinstance(listed, list):
            return cls()
        return cls(frozenset(item for item in listed if isinstance(item, str)))

    def to_wire(self) -> JSONObject:
        accepts: list[JSON] = [*sorted(self.accepts)]
        return {"accepts": accepts} if accepts else {}


def _slot(value: JSON, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(path, "an integer", value)
    return value


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """``claim`` (§4.2). ``worker_name`` is always sent, null allowed: Lightning's handler
    crashes the channel without it."""

    demand: int
    worker_name: str | None
    queues: tuple[str, ...] | None = None

    @property
    def queue_preference(self) -> tuple[str, ...]:
        return DEFAULT_QUEUES if self.queues is None else self.queues

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        queues = None
        if r.get("queues") is not None:
            queues = tuple(_as_str(item, path) for path, item in r.items("queues"))
        return cls(r.integer("demand", minimum=1), r.opt_text("worker_name"), queues)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"demand": self.demand, "worker_name": self.worker_name}
        if self.queues is not None:
            out["queues"] = list(self.queues)
        return out


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    id: str
    token: str


@dataclass(frozen=True, slots=True)
class ClaimReply:
    """The ``ok`` reply to ``claim``: possibly no runs (§4.3)."""

    runs: tuple[ClaimedRun, ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        runs = []
        for path, item in _Reader(value, "").items("runs"):
            run = _Reader(item, path)
            runs.append(ClaimedRun(run.text("id"), run.text("token")))
        return cls(tuple(runs))

    def to_wire(self) -> JSONObject:
        return {"runs": [{"id": run.id, "token": run.token} for run in self.runs]}


@dataclass(frozen=True, slots=True)
class RunRefusal:
    """``run:refuse`` (``Event.RUN_REFUSE``): the worker claimed run ``id`` and will not run it
    because ``token``, the run token it was given, did not verify there (``code`` and
    ``message`` from ``fulmen.tokens``). The token proves to the server that the sender holds
    this claim; the server answers ``ok`` with ``{"returned": true}`` when the run went back
    to the queue, ``false`` when it had moved on already."""

    id: str
    token: str
    code: str
    message: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        return cls(r.text("id"), r.text("token"), r.text("code"), r.text("message"))

    def to_wire(self) -> JSONObject:
        return {"id": self.id, "token": self.token, "code": self.code, "message": self.message}


# -- run:<id>: joining and fetching -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunJoin:
    """``phx_join`` payload of ``run:<id>``; a token that is not a string is refused (§3.3)."""

    token: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(_Reader(value, "").text("token"))

    def to_wire(self) -> JSONObject:
        return {"token": self.token}


@dataclass(frozen=True, slots=True)
class FetchPlan:
    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        _Reader(value, "")
        return cls()

    def to_wire(self) -> JSONObject:
        return {}


def decode_plan_reply(value: JSON) -> JSONObject:
    """The ``fetch:plan`` reply: a LightningPlan object, handed as-is to ``fulmen.plan``."""
    if not isinstance(value, dict):
        raise _wrong("", "a plan object", value)
    return value


@dataclass(frozen=True, slots=True)
class FetchDataclip:
    id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(_Reader(value, "").text("id"))

    def to_wire(self) -> JSONObject:
        return {"id": self.id}


@dataclass(frozen=True, slots=True)
class DataclipReply:
    """The ``fetch:dataclip`` reply: the raw bytes of a JSON document (§5.5)."""

    body: bytes

    @classmethod
    def from_wire(cls, value: JSON | bytes) -> Self:
        if isinstance(value, bytes):
            return cls(value)
        if not isinstance(value, list):
            raise _wrong("", "bytes or an array of byte values", value)
        body = bytearray()
        for i, byte in enumerate(value):
            if isinstance(byte, bool) or not isinstance(byte, int) or not 0 <= byte <= 255:
                raise _bad(f"[{i}]", "must be an integer from 0 to 255")
            body.append(byte)
        return cls(bytes(body))

    def to_wire(self) -> bytes:
        return self.body

    def json(self) -> JSON:
        """The dataclip as JSON, as the worker uses it.

        Raises:
            ContractError: ``bad_dataclip`` if the bytes are not UTF-8 JSON.
        """
        try:
            value: JSON = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"the dataclip is not JSON: {exc}", code="bad_dataclip") from exc
        return value


@dataclass(frozen=True, slots=True)
class FetchCredential:
    id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(_Reader(value, "").text("id"))

    def to_wire(self) -> JSONObject:
        return {"id": self.id}


@dataclass(frozen=True, slots=True)
class CredentialReply:
    """The ``fetch:credential`` reply: the credential body (``state.configuration``) or null."""

    body: JSONObject | None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        if value is not None and not isinstance(value, dict):
            raise _wrong("", "a credential object or null", value)
        return cls(value)

    def to_wire(self) -> JSON:
        return self.body


# -- run:<id>: lifecycle events ---------------------------------------------------------------


def _read_exit(r: _Reader) -> ExitReason:
    """``reason``/``error_type``/``error_message`` of step and run completion (§7.1)."""
    reason = Reason(r.enum("reason", WIRE_REASONS))
    return ExitReason(reason, r.opt_text("error_type"), r.opt_text("error_message"))


@dataclass(frozen=True, slots=True)
class RunStart:
    """``run:start`` (§5.6). ``versions`` maps a component to a version, or an adaptor package
    to a list of versions; Lightning ignores it."""

    versions: Mapping[str, str | tuple[str, ...]]
    timestamp: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        versions = {k: _version(v, f"versions.{k}") for k, v in (r.obj("versions") or {}).items()}
        return cls(versions, r.opt_timestamp("timestamp"))

    def to_wire(self) -> JSONObject:
        versions: JSONObject = {
            k: v if isinstance(v, str) else list(v) for k, v in self.versions.items()
        }
        out: JSONObject = {"versions": versions}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


def _version(value: JSON, path: str) -> str | tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_as_str(item, f"{path}[{i}]") for i, item in enumerate(value))
    return _as_str(value, path)


@dataclass(frozen=True, slots=True)
class StepStart:
    """``step:start`` (§5.7); ``step_id`` is minted by the worker."""

    step_id: str
    job_id: str
    timestamp: str | None = None
    input_dataclip_id: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        return cls(
            r.text("step_id"),
            r.text("job_id"),
            r.opt_timestamp("timestamp"),
            r.opt_text("input_dataclip_id"),
        )

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"step_id": self.step_id, "job_id": self.job_id}
        _put(out, "timestamp", self.timestamp)
        _put(out, "input_dataclip_id", self.input_dataclip_id)
        return out


@dataclass(frozen=True, slots=True)
class Mem:
    """Engine telemetry on ``step:complete``: heap used and RSS, in bytes."""

    job: int
    system: int


@dataclass(frozen=True, slots=True)
class StepComplete:
    """``step:complete`` (§5.8). ``output_dataclip`` is the output state as a JSON *string*;
    an oversized output has ``output_dataclip_error`` instead of either dataclip field.
    Telemetry (``mem``, ``duration``, ``thread_id``, ``timestamp``) is absent on the crash
    path."""

    step_id: str
    job_id: str | None
    exit: ExitReason
    mem: Mem | None = None
    duration: int | float | None = None
    thread_id: int | None = None
    timestamp: str | None = None
    output_dataclip_id: str | None = None
    output_dataclip: str | None = None
    output_dataclip_error: str | None = None
    webhook_response: JSONObject | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        return cls(
            step_id=r.text("step_id"),
            job_id=r.opt_text("job_id"),
            exit=_read_exit(r),
            mem=_mem(r),
            duration=r.opt_number("duration"),
            thread_id=r.opt_integer("thread_id"),
            timestamp=r.opt_timestamp("timestamp"),
            output_dataclip_id=r.opt_text("output_dataclip_id"),
            output_dataclip=r.opt_text("output_dataclip"),
            output_dataclip_error=r.opt_text("output_dataclip_error"),
            webhook_response=r.obj("webhook_response"),
        )

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"step_id": self.step_id}
        _put(out, "job_id", self.job_id)
        if self.mem is not None:
            out["mem"] = {"job": self.mem.job, "system": self.mem.system}
        _put(out, "duration", self.duration)
        _put(out, "thread_id", self.thread_id)
        _put(out, "timestamp", self.timestamp)
        _put(out, "webhook_response", self.webhook_response)
        _put(out, "output_dataclip_error", self.output_dataclip_error)
        _put(out, "output_dataclip_id", self.output_dataclip_id)
        _put(out, "output_dataclip", self.output_dataclip)
        out.update(self.exit.to_wire())
        return out


def _mem(r: _Reader) -> Mem | None:
    if r.get("mem") is None:
        return None
    mem = _Reader(r.get("mem"), "mem")
    return Mem(mem.integer("job"), mem.integer("system"))


def _put(out: JSONObject, key: str, value: JSON) -> None:
    if value is not None:
        out[key] = value


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line, as in ``run:log`` and in each item of ``run:batch_logs`` (§5.9, §8)."""

    message: tuple[JSON, ...]
    source: str
    level: LogLevel
    timestamp: str
    step_id: str | None = None

    @classmethod
    def read(cls, r: _Reader) -> Self:
        message = tuple(item for _, item in r.items("message"))
        if not message:
            raise _bad(r.path("message"), "must not be empty")
        source = r.text("source")
        if len(source) > MAX_SOURCE_LENGTH:
            raise _bad(r.path("source"), f"must be at most {MAX_SOURCE_LENGTH} characters")
        level = LogLevel(r.enum("level", LogLevel))
        return cls(message, source, level, r.timestamp("timestamp"), r.opt_text("step_id"))

    def to_wire(self) -> JSONObject:
        out: JSONObject = {
            "message": list(self.message),
            "source": self.source,
            "level": self.level.value,
            "timestamp": self.timestamp,
        }
        _put(out, "step_id", self.step_id)
        return out


@dataclass(frozen=True, slots=True)
class RunLog:
    run_id: str
    line: LogLine

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        return cls(r.text("run_id"), LogLine.read(r))

    def to_wire(self) -> JSONObject:
        return {"run_id": self.run_id, **self.line.to_wire()}


@dataclass(frozen=True, slots=True)
class RunBatchLogs:
    """``run:batch_logs``: only for servers known to handle it (no negotiation exists)."""

    run_id: str
    logs: tuple[LogLine, ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        logs = tuple(LogLine.read(_Reader(item, path)) for path, item in r.items("logs"))
        return cls(r.text("run_id"), logs)

    def to_wire(self) -> JSONObject:
        return {"run_id": self.run_id, "logs": [line.to_wire() for line in self.logs]}


@dataclass(frozen=True, slots=True)
class RunComplete:
    """``run:complete`` (§5.10). On the error path only the exit reason is sent: no
    timestamp, no final state. ``final_state`` ``None`` means absent."""

    exit: ExitReason
    timestamp: str | None = None
    final_state: JSON = None
    final_dataclip_id: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        r = _Reader(value, "")
        return cls(
            _read_exit(r),
            r.opt_timestamp("timestamp"),
            r.get("final_state"),
            r.opt_text("final_dataclip_id"),
        )

    def to_wire(self) -> JSONObject:
        out: JSONObject = {}
        _put(out, "timestamp", self.timestamp)
        _put(out, "final_state", self.final_state)
        out.update(self.exit.to_wire())
        _put(out, "final_dataclip_id", self.final_dataclip_id)
        return out


RunRequest: TypeAlias = (
    FetchPlan
    | FetchDataclip
    | FetchCredential
    | RunStart
    | StepStart
    | StepComplete
    | RunLog
    | RunBatchLogs
    | RunComplete
)

_RUN_REQUESTS: Final[Mapping[str, type[RunRequest]]] = {
    Event.FETCH_PLAN: FetchPlan,
    Event.FETCH_DATACLIP: FetchDataclip,
    Event.FETCH_CREDENTIAL: FetchCredential,
    Event.RUN_START: RunStart,
    Event.STEP_START: StepStart,
    Event.STEP_COMPLETE: StepComplete,
    Event.RUN_LOG: RunLog,
    Event.RUN_BATCH_LOGS: RunBatchLogs,
    Event.RUN_COMPLETE: RunComplete,
}


def decode_run_request(event: str, payload: JSON) -> RunRequest:
    """Decode what a worker pushed on ``run:<id>``.

    Raises:
        ContractError: ``unknown_event`` for an event the run channel does not have;
            ContractFieldError for a payload that does not fit.
    """
    kind = _RUN_REQUESTS.get(event)
    if kind is None:
        raise ContractError(f"run channels have no {event!r} event", code="unknown_event")
    return kind.from_wire(payload)


# -- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepReply:
    """Lightning's ``ok`` reply to ``step:start`` and ``step:complete``."""

    step_id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(_Reader(value, "").text("step_id"))

    def to_wire(self) -> JSONObject:
        return {"step_id": self.step_id}


@dataclass(frozen=True, slots=True)
class LogReply:
    """Lightning's ``ok`` reply to ``run:log``."""

    log_line_id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(_Reader(value, "").text("log_line_id"))

    def to_wire(self) -> JSONObject:
        return {"log_line_id": self.log_line_id}


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """The ``response`` of an ``error`` reply (§5.2). Any JSON is a valid error, so this never
    fails to decode; it keeps exactly what came and reads the usual shapes out of it:
    ``{"reason": …}`` (join refusals), a changeset map ``{field: [messages]}``, the same map
    under ``"errors"``, or a plain string."""

    raw: JSON = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(value)

    @classmethod
    def because(cls, reason: str) -> Self:
        """``{"reason": reason}``: ``unauthorized``, ``not_found`` (§3.3)."""
        return cls({"reason": reason})

    @classmethod
    def fields(cls, errors: Mapping[str, str], *, wrapped: bool = False) -> Self:
        """A changeset-style reply, one message per field; ``wrapped`` puts it under
        ``"errors"``, as Lightning's hand-built replies do."""
        body: JSONObject = {name: [message] for name, message in errors.items()}
        return cls({"errors": body} if wrapped else body)

    @classmethod
    def from_error(cls, error: ContractError) -> Self:
        """The reply Lightning would give for a payload that failed to decode."""
        if isinstance(error, ContractFieldError) and error.field:
            return cls.fields({error.field: error.message})
        return cls(error.message)

    def to_wire(self) -> JSON:
        return self.raw

    @property
    def reason(self) -> str | None:
        if isinstance(self.raw, dict) and isinstance(self.raw.get("reason"), str):
            return str(self.raw["reason"])
        return None

    @property
    def field_errors(self) -> dict[str, tuple[str, ...]]:
        body = self.raw.get("errors", self.raw) if isinstance(self.raw, dict) else None
        if not isinstance(body, dict):
            return {}
        return {
            name: tuple(str(m) for m in messages)
            for name, messages in body.items()
            if isinstance(messages, list)
        }

    def describe(self) -> str:
        """One line for a log: ``unauthorized``, ``id: Credential not found!``, the string…"""
        if self.reason is not None:
            return self.reason
        if errors := self.field_errors:
            return "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        if isinstance(self.raw, str):
            return self.raw
        return orjson.dumps(self.raw).decode()
