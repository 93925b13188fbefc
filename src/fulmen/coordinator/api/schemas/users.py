"""Users and invitations (issue 18): api/users.py."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc
from fulmen.store import Invitation, NewInvitation, Role, User

#: The roles an invitation may give, by name (Role's values).
RoleName = Literal["owner", "admin", "editor", "viewer"]


class UserDoc(BaseModel):
    id: str
    email: str
    name: str
    instance_admin: bool
    #: ``false`` once disabled: signing in, sessions and personal tokens are refused.
    active: bool
    #: Whether a TOTP second factor guards the user's sign-in.
    totp_enabled: bool
    disabled_at: datetime | None
    inserted_at: datetime

    @classmethod
    def of(cls, user: User) -> UserDoc:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            instance_admin=user.instance_admin,
            active=user.active,
            totp_enabled=user.totp_enabled,
            disabled_at=user.disabled_at,
            inserted_at=user.inserted_at,
        )


class UserPatch(InputDoc):
    """What an instance admin changes of a user; a field left out stays as it is. The last
    active instance admin is neither disabled nor unmade (409 ``last_admin``)."""

    disabled: bool | None = None
    instance_admin: bool | None = None
    #: ``false`` removes the user's TOTP second factor (a lost phone and lost recovery codes):
    #: they sign in with their password alone and enrol again. ``true`` is refused: only the
    #: user enrols.
    second_factor: Literal[False] | None = None


class InvitationIn(InputDoc):
    """An invitation for ``email``: ``role`` in ``project_id`` (both or neither; the project's
    ``members`` permission, ``own`` for an owner), and/or the instance's administration (an
    instance admin only, as is an invitation to no project)."""

    email: str = Field(min_length=3, max_length=320)
    project_id: str | None = Field(default=None, min_length=1)
    role: RoleName | None = None
    instance_admin: bool = False

    def to_store(self) -> NewInvitation:
        role = Role(self.role) if self.role is not None else None
        return NewInvitation(self.email, self.project_id, role, self.instance_admin)


class InvitationDoc(BaseModel):
    #: The SHA-256 of the link's secret: names the invitation (to revoke it), opens nothing.
    id: str
    email: str
    project_id: str | None
    role: str | None
    instance_admin: bool
    inserted_at: datetime
    expires_at: datetime
    #: Only in the answer that made it: the link to pass on, this once.
    url: str | None = None

    @classmethod
    def of(cls, invitation: Invitation, url: str | None = None) -> InvitationDoc:
        return cls(
            id=invitation.digest,
            email=invitation.email,
            project_id=invitation.project_id,
            role=invitation.role.value if invitation.role else None,
            instance_admin=invitation.instance_admin,
            inserted_at=invitation.inserted_at,
            expires_at=invitation.expires_at,
            url=url,
        )
