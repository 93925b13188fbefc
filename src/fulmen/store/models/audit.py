"""The audit trail as stored (issue 18): who changed what, when, from where; audit.py.

A record names its actor and its target by value (kind, id and name as they were), never by
a foreign key: a record outlives the user, the token and the project it names, and says what
they were called when it was made. ``before`` and ``after`` are JSON documents of the target
as the REST API shows it, never with a secret in them (the coordinator builds them:
coordinator/audit.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from fulmen.store.models.common import JSONValue

__all__ = ["ACTOR_KINDS", "Actor", "AuditFilter", "AuditRecord", "NewAuditRecord", "Target"]

#: Who may act: a signed-in user or one's personal token (``user``), a project's service
#: token (``service``), a token made before users existed (``operator``), someone not signed
#: in (``anonymous``: a failed sign-in), the command line on the coordinator's host
#: (``cli``), the coordinator itself (``system``).
ACTOR_KINDS: Final = frozenset({"user", "service", "operator", "anonymous", "cli", "system"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, and the address the request came from ("" when none)."""

    kind: str
    id: str
    name: str
    address: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """What a record is about: ``type`` is a noun (``workflow``, ``credential``, ``project``,
    ``trigger``, ``webhook_auth_method``, ``token``, ``member``, ``user``, ``run``,
    ``work_order``, ``session``, ``request``), ``id`` its id, ``name`` what it was called."""

    type: str
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class NewAuditRecord:
    """A record to append; the store stamps it with its clock's time and a sequence number.

    ``action`` is a stable code, ``<noun>.<verb>`` (``workflow.updated``, ``sign_in.failed``,
    ``access.refused``); ``project_id`` is ``None`` for what concerns the whole instance (a
    sign-in, a user, an instance setting).
    """

    actor: Actor
    action: str
    target: Target
    project_id: str | None = None
    before: Mapping[str, JSONValue] | None = None
    after: Mapping[str, JSONValue] | None = None
    #: What else the record should say: a reason, the request refused.
    detail: Mapping[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    #: Its place in the trail: later records have larger numbers.
    seq: int
    at: datetime
    actor: Actor
    action: str
    target: Target
    project_id: str | None
    before: dict[str, JSONValue] | None
    after: dict[str, JSONValue] | None
    detail: dict[str, JSONValue] | None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a listing shows; a ``None`` field does not filter.

    ``actor`` matches an actor's id or name (an e-mail, a token's name); ``action`` a code or
    every code under it (``workflow`` matches ``workflow.updated``); ``target`` a target's id;
    ``since`` is inclusive, ``until`` exclusive.
    """

    project_id: str | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
