"""Joining ``run:<id>`` and what a worker fetches there: plan, dataclips, credentials (§5.3-5.5).

The requests are tiny and decoded as Structs; their replies are shaped by the server and read
by hand: a plan is handed as-is to ``fulmen.plan``, a dataclip is bytes (a binary frame from
Lightning, a JSON array of byte values from lightning-mock), a credential is any object.
"""

from __future__ import annotations

from typing import Any, Final, Self

import orjson
from msgspec import Struct

from fulmen.contract.decoding import bad, decode, wrong
from fulmen.contract.vocabulary import JSON, JSONObject
from fulmen.errors import ContractError

__all__ = [
    "CLAIM_FETCHES",
    "FETCHABLE",
    "JOIN_FETCHES",
    "JOIN_REPORTS",
    "CredentialReply",
    "DataclipReply",
    "FetchCredential",
    "FetchDataclip",
    "FetchPlan",
    "RunJoin",
    "RunJoined",
    "decode_plan_reply",
]


#: What a Fulmen coordinator lists in its ``worker:queue`` join answer (``QueueJoined.accepts``)
#: when it answers a run join that asks for them (``RunJoin.fetch``) with the run's plan and
#: input: two round trips fewer per run. Lightning's join answer is ``{}`` whatever is asked.
JOIN_FETCHES: Final = "phx_join:fetch"

#: What a run join may ask for, in ``fetch``; a server answers what it knows of them and the
#: worker fetches the rest, so a newer worker may ask an older server for more.
FETCHABLE: Final = ("plan", "dataclip")

#: Listed by a Fulmen coordinator when it answers a claim that asks (``ClaimRequest.fetch``)
#: with each run's plan and input beside its token, and takes such a claim as the runs' join
#: too (the run is joined in the claim's own transaction, so nothing can take it back as
#: never joined): the worker runs it at once, and joins ``run:<id>`` only when it has
#: something to send there. Two round trips fewer per run, and one commit.
CLAIM_FETCHES: Final = "claim:fetch"

#: Listed by a Fulmen coordinator that takes a run's first ``run:reports`` frame inside the
#: run join itself (``RunJoin.reports``) and answers it in the join's answer
#: (``RunJoined.reports``): with :data:`CLAIM_FETCHES`, a short run is a claim and one join.
JOIN_REPORTS: Final = "phx_join:reports"


class RunJoin(Struct, frozen=True):
    """``phx_join`` payload of ``run:<id>``; a token that is not a string is refused (§3.3).
    ``fetch`` (Fulmen's own, only to a server that lists :data:`JOIN_FETCHES`) asks for the
    plan and the input in the join's answer (:class:`RunJoined`). ``reports`` (only to a
    server that lists :data:`JOIN_REPORTS`) is a ``run:reports`` frame's list, handled
    once the join is accepted as if it had come right after it; it is decoded then
    (``RunReports``), so a bad frame is refused on its own and the join still stands. With
    ``leave`` (a frame that ends the run), a frame that was taken closes the channel with the
    join's answer, which says so (``RunJoined.left``): no ``phx_leave`` follows."""

    token: str
    fetch: tuple[str, ...] = ()
    reports: list[Any] | None = None
    leave: bool = False

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        out: JSONObject = {"token": self.token}
        if self.fetch:
            out["fetch"] = list(self.fetch)
        if self.reports is not None:
            out["reports"] = self.reports
        if self.leave:
            out["leave"] = True
        return out


class RunJoined(Struct, frozen=True):
    """The ``ok`` answer to a run join: ``{}`` (Lightning), or what ``fetch`` asked for: the
    ``fetch:plan`` reply (``plan``), and the input as JSON (``dataclip``, with
    ``has_dataclip``: absent when the run has none, null when it was wiped). What is not in
    the answer is fetched. ``reports``: the reply to the join's frame, as a reply frame's
    payload (``{"status": "ok", "response": {"replies": [...]}}``); ``left``: the channel
    closed with this answer, as the join asked (``RunJoin.leave``). A claim that fetched
    (:data:`CLAIM_FETCHES`) carries the same fields beside each run's token. Reading is
    lenient, as the worker reads what its server says."""

    plan: JSONObject | None = None
    has_dataclip: bool = False
    dataclip: Any = None
    reports: JSONObject | None = None
    left: bool = False

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        if not isinstance(value, dict):
            return cls()
        plan, reports = value.get("plan"), value.get("reports")
        return cls(
            plan if isinstance(plan, dict) else None,
            "dataclip" in value,
            value.get("dataclip"),
            reports if isinstance(reports, dict) else None,
            value.get("left") is True,
        )

    def to_wire(self) -> JSONObject:
        out: JSONObject = {}
        if self.plan is not None:
            out["plan"] = self.plan
        if self.has_dataclip:
            out["dataclip"] = self.dataclip
        if self.reports is not None:
            out["reports"] = self.reports
        if self.left:
            out["left"] = True
        return out


class FetchPlan(Struct, frozen=True):
    """``fetch:plan``: an empty object."""

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {}


def decode_plan_reply(value: JSON) -> JSONObject:
    """The ``fetch:plan`` reply: a LightningPlan object, handed as-is to ``fulmen.plan``."""
    if not isinstance(value, dict):
        raise wrong("", "a plan object", value)
    return value


class FetchDataclip(Struct, frozen=True):
    id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"id": self.id}


class DataclipReply(Struct, frozen=True):
    """The ``fetch:dataclip`` reply: the raw bytes of a JSON document (§5.5)."""

    body: bytes

    @classmethod
    def from_wire(cls, value: JSON | bytes) -> Self:
        if isinstance(value, bytes):
            return cls(value)
        if not isinstance(value, list):
            raise wrong("", "bytes or an array of byte values", value)
        body = bytearray()
        for i, byte in enumerate(value):
            if isinstance(byte, bool) or not isinstance(byte, int) or not 0 <= byte <= 255:
                raise bad(f"[{i}]", "must be an integer from 0 to 255")
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


class FetchCredential(Struct, frozen=True):
    id: str

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        return decode(value, cls)

    def to_wire(self) -> JSONObject:
        return {"id": self.id}


class CredentialReply(Struct, frozen=True):
    """The ``fetch:credential`` reply: the credential body (``state.configuration``) or null."""

    body: JSONObject | None

    @classmethod
    def from_wire(cls, value: JSON) -> Self:
        if value is not None and not isinstance(value, dict):
            raise wrong("", "a credential object or null", value)
        return cls(value)

    def to_wire(self) -> JSON:
        return self.body
