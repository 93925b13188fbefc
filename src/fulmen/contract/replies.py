"""Lightning's replies on ``run:<id>``: to step events, to log lines, and every ``error`` (§5.2).

The ``ok`` replies are Structs decoded like requests; an ``error`` reply may be any JSON, so
:class:`ErrorReply` keeps what came and reads the usual shapes out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import orjson
from msgspec import Struct

from fulmen.contract.decoding import decode
from fulmen.contract.vocabulary import JSON, JSONObject
from fulmen.errors import ContractError, ContractFieldError, RefusedError

__all__ = ["ErrorReply", "LogReply", "StepReply"]


class StepReply(Struct, frozen=True):
    """Lightning's ``ok`` reply to ``step:start`` and ``step:complete``."""

    step_id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"step_id": self.step_id}


class LogReply(Struct, frozen=True):
    """Lightning's ``ok`` reply to ``run:log``."""

    log_line_id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"log_line_id": self.log_line_id}


class ErrorReply(Struct, frozen=True):
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

    def refusal(self, request: str, topic: str) -> RefusedError:
        """What a worker raises for this answer to its ``request`` on ``topic``; ``code`` is
        the reason, when there is one."""
        return RefusedError(
            f"{request} on {topic} was refused: {self.describe()}",
            response=self.raw,
            code=self.reason or "refused",
        )

    def describe(self) -> str:
        """One line for a log: ``unauthorized``, ``id: Credential not found!``, the string…"""
        if self.reason is not None:
            return self.reason
        if errors := self.field_errors:
            return "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        if isinstance(self.raw, str):
            return self.raw
        return orjson.dumps(self.raw).decode()
