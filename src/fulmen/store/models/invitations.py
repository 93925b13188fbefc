"""Invitations as stored (issue 18): store/invitations.py.

An invitation is a link holding a random secret; the store keeps only the secret's SHA-256
(``digest``, which also names the invitation where an admin lists or revokes it: it opens
nothing), the e-mail it is for and what accepting it gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fulmen.store.models.users import Role

__all__ = ["Invitation", "NewInvitation"]


@dataclass(frozen=True, slots=True)
class NewInvitation:
    """An invitation to make: for ``email``, giving ``role`` in ``project_id`` (both or
    neither) and, with ``instance_admin``, the instance's administration; ``invited_by`` is
    the inviting user's id (``None``: an operator or service token)."""

    email: str
    project_id: str | None = None
    role: Role | None = None
    instance_admin: bool = False
    invited_by: str | None = None


@dataclass(frozen=True, slots=True)
class Invitation:
    digest: str
    email: str
    project_id: str | None
    role: Role | None
    instance_admin: bool
    invited_by: str | None
    inserted_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
