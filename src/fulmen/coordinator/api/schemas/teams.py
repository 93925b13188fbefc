"""A project's members, and API tokens (personal and service): api/members.py, api/tokens.py."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc
from fulmen.store import ApiToken, Member, Role

__all__ = [
    "MadeTokenDoc",
    "MemberDoc",
    "MemberIn",
    "RoleIn",
    "ServiceTokenIn",
    "TokenDoc",
    "TokenIn",
]

RoleName = Literal["owner", "admin", "editor", "viewer"]


class MemberIn(InputDoc):
    """Add an existing user to a project, by their e-mail address."""

    email: str = Field(min_length=3, max_length=320)
    role: RoleName


class RoleIn(InputDoc):
    role: RoleName


class MemberDoc(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    inserted_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberDoc:
        return cls(
            user_id=member.user_id,
            email=member.email,
            name=member.name,
            role=member.role.value,
            inserted_at=member.inserted_at,
        )


class TokenIn(InputDoc):
    name: str = Field(min_length=1, max_length=200, description="Who or what it is for")


class ServiceTokenIn(TokenIn):
    role: RoleName = Field(description="Its role in the project: at most the maker's")


class TokenDoc(BaseModel):
    """A token without its secret. ``kind``: ``personal`` (acts with its user's roles),
    ``service`` (acts in ``project_id`` with ``role``), ``operator`` (made before users, or
    by ``fulmen server token create`` alone: acts as an instance admin)."""

    id: str
    name: str
    kind: Literal["personal", "service", "operator"]
    user_id: str | None
    project_id: str | None
    role: str | None
    inserted_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenDoc:
        kind: Literal["personal", "service", "operator"] = (
            "personal" if token.user_id else "service" if token.service else "operator"
        )
        return cls(
            id=token.id,
            name=token.name,
            kind=kind,
            user_id=token.user_id,
            project_id=token.project_id,
            role=token.role.value if isinstance(token.role, Role) else None,
            inserted_at=token.inserted_at,
            last_used_at=token.last_used_at,
        )


class MadeTokenDoc(TokenDoc):
    #: The token itself: in this answer only, never again.
    token: str

    @classmethod
    def made(cls, secret: str, token: ApiToken) -> MadeTokenDoc:
        return cls(token=secret, **TokenDoc.of(token).model_dump())
