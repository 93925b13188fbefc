"""Webhook auth methods and the triggers they guard: api/webhook_auth.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
)

from fulmen.coordinator.api.schemas.common import InputDoc, NewId
from fulmen.store import (
    NewWebhookAuthMethod,
    WebhookAuthMethod,
    WebhookAuthType,
)
from fulmen.store.webhook_auth import PASSWORD_LENGTHS


class _MethodIn(InputDoc):
    id: NewId
    name: str = Field(min_length=1)

    def to_store(self, project_id: str) -> NewWebhookAuthMethod:
        given = self.model_dump()
        return NewWebhookAuthMethod(
            id=self.id,
            project_id=project_id,
            name=self.name,
            auth_type=WebhookAuthType(given["auth_type"]),
            api_key=given.get("api_key"),
            username=given.get("username"),
            password=given.get("password"),
        )


class ApiKeyMethodIn(_MethodIn):
    """An ``api`` method: the ``x-api-key`` header. ``api_key`` absent: one is made (64 hex
    characters) and shown in the answer, once."""

    auth_type: Literal["api"]
    api_key: str | None = Field(default=None, min_length=16, repr=False)


class BasicMethodIn(_MethodIn):
    """A ``basic`` method: HTTP Basic, with a ``username`` (no ``:``) and a ``password`` of 8
    to 72 characters (Lightning's bounds)."""

    auth_type: Literal["basic"]
    username: str = Field(min_length=1, pattern="^[^:]+$", repr=False)
    password: str = Field(
        min_length=PASSWORD_LENGTHS.start, max_length=PASSWORD_LENGTHS.stop - 1, repr=False
    )


#: A new webhook auth method, by its ``auth_type``. Secrets are write-only: stored encrypted,
#: shown again never (but a made key, once).
WebhookAuthMethodIn = Annotated[ApiKeyMethodIn | BasicMethodIn, Field(discriminator="auth_type")]


class WebhookAuthMethodDoc(BaseModel):
    id: str
    project_id: str
    name: str
    auth_type: str
    inserted_at: datetime
    updated_at: datetime
    #: Only in the answer to creating an ``api`` method: the key, this once.
    api_key: str | None = None

    @classmethod
    def of(cls, method: WebhookAuthMethod) -> WebhookAuthMethodDoc:
        return cls(
            id=method.id,
            project_id=method.project_id,
            name=method.name,
            auth_type=method.auth_type.value,
            inserted_at=method.inserted_at,
            updated_at=method.updated_at,
            api_key=method.api_key,
        )


class TriggerAuthIn(InputDoc):
    """The auth methods a webhook trigger takes from now on: any one of them will do; an
    empty list opens the trigger again."""

    method_ids: list[str] = Field(max_length=100)
