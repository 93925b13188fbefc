"""The ``run:<id>`` channel's lifecycle events (§5.6-5.10).

``step:complete`` and ``run:complete`` carry the exit reason as three flat fields
(``reason``, ``error_type``, ``error_message``, §7.1); their values hold it as one
:class:`~fulmen.reasons.ExitReason`, so each is decoded through a private Struct shaped like
the wire and then built. ``to_wire`` writes keys in the order ws-worker 1.25.0 does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from msgspec import Struct

from fulmen.contract.decoding import check_timestamp, decode, not_one_of, wrong
from fulmen.contract.vocabulary import JSON, WIRE_REASONS, JSONObject
from fulmen.errors import ContractFieldError
from fulmen.reasons import ExitReason, Reason

__all__ = [
    "Mem",
    "RunComplete",
    "RunStart",
    "StepComplete",
    "StepStart",
]


class _RunStartWire(Struct):
    versions: dict[str, Any] | None = None
    timestamp: str | None = None


class RunStart(Struct, frozen=True):
    """``run:start`` (§5.6). ``versions`` maps a component to a version, or an adaptor package
    to a list of versions; Lightning ignores it."""

    versions: Mapping[str, str | tuple[str, ...]]
    timestamp: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        wire = decode(value, _RunStartWire)
        check_timestamp(wire.timestamp, "timestamp")
        versions: dict[str, str | tuple[str, ...]] = {}
        for name, version in (wire.versions or {}).items():
            if isinstance(version, str):
                versions[name] = version
            elif isinstance(version, list) and all(isinstance(item, str) for item in version):
                versions[name] = tuple(version)
            else:
                raise _not_a_version(f"versions.{name}", version)
        return cls(versions, wire.timestamp)

    def to_wire(self) -> JSONObject:
        versions: JSONObject = {
            k: v if isinstance(v, str) else list(v) for k, v in self.versions.items()
        }
        out: JSONObject = {"versions": versions}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


def _not_a_version(path: str, value: JSON) -> ContractFieldError:
    """What is wrong with a version that is neither a string nor a list of strings."""
    if isinstance(value, list):
        i, item = next((i, item) for i, item in enumerate(value) if not isinstance(item, str))
        return wrong(f"{path}[{i}]", "a string", item)
    return wrong(path, "a string", value)


class StepStart(Struct, frozen=True):
    """``step:start`` (§5.7); ``step_id`` is minted by the worker."""

    step_id: str
    job_id: str
    timestamp: str | None = None
    input_dataclip_id: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        start = decode(value, cls)
        check_timestamp(start.timestamp, "timestamp")
        return start

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"step_id": self.step_id, "job_id": self.job_id}
        _put(out, "timestamp", self.timestamp)
        _put(out, "input_dataclip_id", self.input_dataclip_id)
        return out


class Mem(Struct, frozen=True):
    """Engine telemetry on ``step:complete``: heap used and RSS, in bytes."""

    job: int
    system: int


def _exit(reason: Reason, error_type: str | None, error_message: str | None) -> ExitReason:
    """``reason``/``error_type``/``error_message`` of step and run completion (§7.1)."""
    if reason is Reason.LOST:  # a Reason, but the server's own: never on the wire
        raise not_one_of("reason", WIRE_REASONS, reason.value)
    return ExitReason(reason, error_type, error_message)


class _StepCompleteWire(Struct):
    """``step:complete`` as it travels; fields in the order a misfit is looked for."""

    step_id: str
    reason: Reason
    job_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    mem: Mem | None = None
    duration: int | float | None = None
    thread_id: int | None = None
    timestamp: str | None = None
    output_dataclip_id: str | None = None
    output_dataclip: str | None = None
    output_dataclip_error: str | None = None
    webhook_response: dict[str, Any] | None = None


class StepComplete(Struct, frozen=True):
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
        wire = decode(value, _StepCompleteWire)
        check_timestamp(wire.timestamp, "timestamp")
        return cls(  # positionally: a third faster than by keyword, on the hot path
            wire.step_id,
            wire.job_id,
            _exit(wire.reason, wire.error_type, wire.error_message),
            wire.mem,
            wire.duration,
            wire.thread_id,
            wire.timestamp,
            wire.output_dataclip_id,
            wire.output_dataclip,
            wire.output_dataclip_error,
            wire.webhook_response,
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


def _put(out: JSONObject, key: str, value: JSON) -> None:
    if value is not None:
        out[key] = value


class _RunCompleteWire(Struct):
    reason: Reason
    error_type: str | None = None
    error_message: str | None = None
    timestamp: str | None = None
    final_state: Any = None
    final_dataclip_id: str | None = None


class RunComplete(Struct, frozen=True):
    """``run:complete`` (§5.10). On the error path only the exit reason is sent: no
    timestamp, no final state. ``final_state`` ``None`` means absent."""

    exit: ExitReason
    timestamp: str | None = None
    final_state: JSON = None
    final_dataclip_id: str | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        wire = decode(value, _RunCompleteWire)
        check_timestamp(wire.timestamp, "timestamp")
        exit = _exit(wire.reason, wire.error_type, wire.error_message)
        return cls(exit, wire.timestamp, wire.final_state, wire.final_dataclip_id)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {}
        _put(out, "timestamp", self.timestamp)
        _put(out, "final_state", self.final_state)
        out.update(self.exit.to_wire())
        _put(out, "final_dataclip_id", self.final_dataclip_id)
        return out
