"""What the runtime tells its parent, as typed values with a plain-dict form for the pipe.

The child builds these and emits ``to_dict()``; the parent decodes each dict once with
``decode`` and never handles raw dicts after that. Outputs travel as JSON text, serialised once
in the child, because that is the form ``step:complete`` carries them in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from fulmen.errors import ContractError
from fulmen.reasons import ExitReason, Reason

__all__ = [
    "LogLine",
    "RuntimeEvent",
    "StepComplete",
    "StepStart",
    "WorkflowComplete",
    "WorkflowStart",
    "decode",
    "timestamp_us",
]


def timestamp_us() -> str:
    """Microseconds since the epoch as a decimal string: the only form Lightning reads (§8.3)."""
    return str(time.time_ns() // 1000)


@dataclass(frozen=True, slots=True)
class WorkflowStart:
    TYPE: ClassVar[str] = "workflow-start"
    timestamp: str


@dataclass(frozen=True, slots=True)
class LogLine:
    TYPE: ClassVar[str] = "log"
    level: str
    source: str
    message: list[Any]
    timestamp: str
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class StepStart:
    TYPE: ClassVar[str] = "step-start"
    step_id: str
    job_id: str
    timestamp: str


@dataclass(frozen=True, slots=True)
class StepComplete:
    TYPE: ClassVar[str] = "step-complete"
    step_id: str
    job_id: str
    reason: str
    error_type: str | None
    error_message: str | None
    #: The cleaned output state as JSON text ("{}" when there is none).
    output: str
    #: Jobs this step's output flows to; empty for a leaf.
    next: list[str]
    duration_ms: int | None = None
    mem_bytes: int | None = None
    timestamp: str | None = None
    #: The output's size in bytes when it was too large to leave the sandbox: ``output`` is
    #: then ``"{}"`` and stands for nothing; the next steps still got the real state.
    output_withheld: int | None = None

    @property
    def exit(self) -> ExitReason:
        return ExitReason(Reason(self.reason), self.error_type, self.error_message)


@dataclass(frozen=True, slots=True)
class WorkflowComplete:
    TYPE: ClassVar[str] = "workflow-complete"
    reason: str
    error_type: str | None
    error_message: str | None
    #: Final state as JSON text: the single leaf's output, or an object keyed by step.
    final_state: str | None
    #: Step ids of the leaves, in completion order.
    leaves: list[str]
    timestamp: str | None = None

    @property
    def exit(self) -> ExitReason:
        return ExitReason(Reason(self.reason), self.error_type, self.error_message)


RuntimeEvent = WorkflowStart | LogLine | StepStart | StepComplete | WorkflowComplete

_TYPES: dict[str, type[RuntimeEvent]] = {
    cls.TYPE: cls for cls in (WorkflowStart, LogLine, StepStart, StepComplete, WorkflowComplete)
}
# Looked up once: decode() runs for every event of every run, in the worker's event loop.
_FIELDS: dict[type[RuntimeEvent], frozenset[str]] = {
    cls: frozenset(f.name for f in fields(cls)) for cls in _TYPES.values()
}
_ORDER: dict[type[RuntimeEvent], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _TYPES.values()
}
_REASONS: frozenset[str] = frozenset(reason.value for reason in Reason)


def to_dict(event: RuntimeEvent) -> dict[str, Any]:
    """The event as the child emits it. Shallow, unlike ``dataclasses.asdict``, which copies
    every list and took a quarter of a trivial run's time: the dict is serialised at once
    and the fields hold only strings, numbers and lists of them."""
    return {"type": event.TYPE, **{name: getattr(event, name) for name in _ORDER[type(event)]}}


def decode(obj: Mapping[str, Any]) -> RuntimeEvent:
    """Decode one event dict; anything malformed is a ContractError naming the problem."""
    cls = _TYPES.get(str(obj.get("type")))
    if cls is None:
        raise ContractError(f"unknown runtime event type {obj.get('type')!r}")
    names = _FIELDS[cls]
    try:
        event = cls(**{k: v for k, v in obj.items() if k in names})
    except TypeError as exc:
        raise ContractError(f"malformed {cls.TYPE} event: {exc}") from exc
    if isinstance(event, StepComplete | WorkflowComplete) and event.reason not in _REASONS:
        raise ContractError(f"{cls.TYPE}: unknown reason {event.reason!r}")
    return event
