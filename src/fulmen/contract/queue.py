"""The ``worker:queue`` channel: its join, ``claim`` and its reply, and ``run:refuse`` (§4).

``work-available`` is a push without a payload worth a type (lightning-mock sends ``"{}"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from msgspec import Meta, Struct

from fulmen.contract.decoding import decode, wrong
from fulmen.contract.vocabulary import DEFAULT_QUEUES, JSON, JSONObject

__all__ = ["ClaimReply", "ClaimRequest", "ClaimedRun", "QueueJoin", "QueueJoined", "RunRefusal"]


class _QueueJoinWire(Struct):
    capacity: int | None = None
    queues: dict[str, Any] | None = None


class QueueJoin(Struct, frozen=True):
    """``phx_join`` payload of ``worker:queue``: informational, Lightning ignores it (§4.1)."""

    capacity: int | None = None
    queues: Mapping[str, int] | None = None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        wire = decode(value, _QueueJoinWire)
        if wire.queues is None:
            return cls(wire.capacity)
        for name, slots in wire.queues.items():
            if type(slots) is not int:
                raise wrong(f"queues.{name}", "an integer", slots)
        return cls(wire.capacity, wire.queues)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {}
        if self.capacity is not None:
            out["capacity"] = self.capacity
        if self.queues is not None:
            out["queues"] = dict(self.queues)
        return out


class QueueJoined(Struct, frozen=True):
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


class ClaimRequest(Struct, frozen=True):
    """``claim`` (§4.2). ``worker_name`` is always sent, null allowed: Lightning's handler
    crashes the channel without it. Absent, it reads as null."""

    demand: Annotated[int, Meta(ge=1)]
    worker_name: str | None = None
    queues: tuple[str, ...] | None = None

    @property
    def queue_preference(self) -> tuple[str, ...]:
        return DEFAULT_QUEUES if self.queues is None else self.queues

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"demand": self.demand, "worker_name": self.worker_name}
        if self.queues is not None:
            out["queues"] = list(self.queues)
        return out


class ClaimedRun(Struct, frozen=True):
    id: str
    token: str


class ClaimReply(Struct, frozen=True):
    """The ``ok`` reply to ``claim``: possibly no runs (§4.3)."""

    runs: tuple[ClaimedRun, ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"runs": [{"id": run.id, "token": run.token} for run in self.runs]}


class RunRefusal(Struct, frozen=True):
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
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"id": self.id, "token": self.token, "code": self.code, "message": self.message}
