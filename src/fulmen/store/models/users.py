"""People and their roles as stored (issue 18): users.py and members.py.

What a role allows is the coordinator's business (coordinator/access.py); the store keeps
who has which role where, and a user's password only as an argon2id hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Member", "NewUser", "Role", "User"]


class Role(StrEnum):
    """A user's or a service token's role in one project, strongest first."""

    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user to create: ``email`` is kept in lower case; ``password_hash`` is ``None`` for
    someone who has not chosen a password yet (invited, or signing in by SSO only)."""

    email: str
    name: str = ""
    password_hash: str | None = None
    instance_admin: bool = False


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    instance_admin: bool
    password_hash: str | None
    #: Whether a confirmed TOTP second factor guards the sign-in.
    totp_enabled: bool
    disabled_at: datetime | None
    password_changed_at: datetime | None
    inserted_at: datetime

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def label(self) -> str:
        """How the user is named to others: the name if there is one, else the e-mail."""
        return self.name or self.email


@dataclass(frozen=True, slots=True)
class Member:
    """A user's role in a project, with what the members list shows of the user."""

    project_id: str
    user_id: str
    email: str
    name: str
    role: Role
    inserted_at: datetime
