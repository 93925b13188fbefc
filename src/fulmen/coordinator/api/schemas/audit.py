"""The audit trail's records as the REST API shows them and exports them: api/audit_trail.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fulmen.coordinator import diffs
from fulmen.store import AuditRecord

__all__ = ["ActorDoc", "AuditRecordDoc", "TargetDoc"]


class ActorDoc(BaseModel):
    #: ``user``, ``service`` (a project's token), ``operator`` (a token from before users),
    #: ``anonymous`` (not signed in), ``cli`` (``fulmen server …`` on the host), ``system``.
    kind: str
    id: str
    #: The e-mail or the token's name, as it was then.
    name: str
    #: Where the request came from (the client's IP address).
    address: str


class TargetDoc(BaseModel):
    type: str
    id: str
    name: str


class AuditRecordDoc(BaseModel):
    """One record: who did what to which target, when, from where; the target's document
    before and after (never a secret), and their diff."""

    #: The record's place in the trail: later records have larger ids.
    id: int
    at: datetime
    actor: ActorDoc
    #: A stable code, ``<noun>.<verb>``: ``workflow.updated``, ``sign_in.failed``,
    #: ``access.refused``, ...
    action: str
    #: ``null``: the whole instance's (a sign-in, a user).
    project_id: str | None
    target: TargetDoc
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    #: What else it says: a reason, the request refused.
    detail: dict[str, Any] | None
    diff: str | None = Field(
        default=None,
        description="A unified diff of before and after, written as YAML (a job's code line "
        "by line); null when the record has not both, or they are too large to compare.",
    )

    @classmethod
    def of(cls, record: AuditRecord, *, diff: bool = True) -> AuditRecordDoc:
        a, t = record.actor, record.target
        name = f"{t.type} {t.name or t.id}".strip()
        return cls(
            id=record.seq,
            at=record.at,
            actor=ActorDoc(kind=a.kind, id=a.id, name=a.name, address=a.address),
            action=record.action,
            project_id=record.project_id,
            target=TargetDoc(type=t.type, id=t.id, name=t.name),
            before=record.before,
            after=record.after,
            detail=record.detail,
            diff=diffs.unified(record.before, record.after, name=name) if diff else None,
        )
