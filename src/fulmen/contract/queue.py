"""The ``worker:queue`` channel: its join, ``claim`` and its reply, and ``run:refuse`` (§4).

``work-available`` is a push without a payload worth a type (lightning-mock sends ``"{}"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import replace

from fulmen.contract.decoding import decode, wrong
from fulmen.contract.fetches import RunJoined
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
    crashes the channel without it. Absent, it reads as null. ``fetch`` (Fulmen's own, only
    to a server that lists ``CLAIM_FETCHES``): what each run's entry in the reply should
    carry, as ``RunJoin.fetch`` asks a join; such a claim joins the runs it takes.
    ``languages`` (Fulmen's own, sent to every server: Lightning ignores what it does not
    know): the job languages the worker runs; a claim without them is from a worker that runs
    JavaScript only, as OpenFn's ws-worker does, and gets only runs whose every job it can run.
    """

    demand: Annotated[int, Meta(ge=1)]
    worker_name: str | None = None
    queues: tuple[str, ...] | None = None
    fetch: tuple[str, ...] = ()
    languages: tuple[str, ...] | None = None

    def fetching(self, fetch: tuple[str, ...]) -> Self:
        """This claim, asking for ``fetch`` in its answer too."""
        return replace(self, fetch=fetch)

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
        if self.fetch:
            out["fetch"] = list(self.fetch)
        if self.languages is not None:
            out["languages"] = list(self.languages)
        return out

    @property
    def runs_languages(self) -> tuple[str, ...]:
        """The languages this claim's worker runs: what it says, else JavaScript only."""
        return ("javascript",) if self.languages is None else self.languages


class ClaimedRun(Struct, frozen=True):
    """One run of a claim's reply. ``fetched``: what a claim that asked for it brought (the
    run's plan and input, ``RunJoined``'s fields beside the token on the wire); ``None``
    when the server sent no plan (Lightning), and the run is then joined and fetched."""

    id: str
    token: str
    fetched: RunJoined | None = None

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"id": self.id, "token": self.token}
        if self.fetched is not None:
            out |= self.fetched.to_wire()
        return out


class _ClaimedWire(Struct):
    id: str
    token: str
    plan: Any = None
    dataclip: Any | UnsetType = UNSET


class _ClaimReplyWire(Struct):
    runs: tuple[_ClaimedWire, ...]


class ClaimReply(Struct, frozen=True):
    """The ``ok`` reply to ``claim``: possibly no runs (§4.3)."""

    runs: tuple[ClaimedRun, ...]

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return cls(tuple(_claimed(run) for run in decode(value, _ClaimReplyWire).runs))

    def to_wire(self) -> JSONObject:
        return {"runs": [run.to_wire() for run in self.runs]}


def _claimed(wire: _ClaimedWire) -> ClaimedRun:
    if not isinstance(wire.plan, dict):
        return ClaimedRun(wire.id, wire.token)
    has_dataclip = wire.dataclip is not UNSET
    fetched = RunJoined(wire.plan, has_dataclip, wire.dataclip if has_dataclip else None)
    return ClaimedRun(wire.id, wire.token, fetched)


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
