"""Log lines on ``run:<id>``: ``run:log`` (one line) and ``run:batch_logs`` (several) (§5.9, §8).

The hottest payloads of the protocol: a run sends one per line its job prints. Validation
follows Lightning, not lightning-mock: a non-empty ``message``, a ``source`` of at most 8
characters, a known ``level`` and a ``timestamp``.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from msgspec import Meta, Struct

from fulmen.contract.decoding import TIMESTAMP_PROBLEM, bad, decode, is_timestamp, missing, wrong
from fulmen.contract.vocabulary import JSON, MAX_SOURCE_LENGTH, JSONObject, LogLevel

__all__ = ["LogLine", "RunBatchLogs", "RunLog"]


class LogLine(Struct, frozen=True):
    """One log line, as in ``run:log`` and in each item of ``run:batch_logs``. ``message``
    holds JSON values as they came (typed ``Any`` so that decoding passes them through
    without walking them)."""

    message: Annotated[tuple[Any, ...], Meta(min_length=1)]
    source: Annotated[str, Meta(max_length=MAX_SOURCE_LENGTH)]
    level: LogLevel
    timestamp: str
    step_id: str | None = None

    def to_wire(self) -> JSONObject:
        out: JSONObject = {
            "message": list(self.message),
            "source": self.source,
            "level": self.level.value,
            "timestamp": self.timestamp,
        }
        if self.step_id is not None:
            out["step_id"] = self.step_id
        return out


class RunLog(Struct, frozen=True):
    run_id: str
    line: LogLine

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        run_id = _run_id(value)
        line = decode(value, LogLine)
        if not is_timestamp(line.timestamp):
            raise bad("timestamp", TIMESTAMP_PROBLEM)
        return cls(run_id, line)

    def to_wire(self) -> JSONObject:
        return {"run_id": self.run_id, **self.line.to_wire()}


def _run_id(value: JSON) -> str:
    """The ``run_id`` beside a ``run:log`` line's own fields, checked before them."""
    if not isinstance(value, dict):
        raise wrong("", "a JSON object", value)
    run_id = value.get("run_id")
    if not isinstance(run_id, str):
        raise missing("run_id") if run_id is None else wrong("run_id", "a string", run_id)
    return run_id


class RunBatchLogs(Struct, frozen=True):
    """``run:batch_logs``: only for servers known to handle it (no negotiation exists)."""

    run_id: str
    logs: tuple[LogLine, ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        batch = decode(value, cls)
        for i, line in enumerate(batch.logs):
            if not is_timestamp(line.timestamp):
                raise bad(f"logs[{i}].timestamp", TIMESTAMP_PROBLEM)
        return batch

    def to_wire(self) -> JSONObject:
        return {"run_id": self.run_id, "logs": [line.to_wire() for line in self.logs]}
