"""Webhook auth methods and their secrets: webhook_auth.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["NewWebhookAuthMethod", "WebhookAuthMethod", "WebhookAuthType", "WebhookSecret"]


class WebhookAuthType(StrEnum):
    #: The ``x-api-key`` header carries the key.
    API = "api"
    #: ``Authorization: Basic`` carries a username and password.
    BASIC = "basic"


@dataclass(frozen=True, slots=True)
class NewWebhookAuthMethod:
    """A webhook auth method to create: an API key (``None``: the store makes one, 32 random
    bytes as hex, as Lightning does) or a username and password."""

    id: str
    project_id: str
    name: str
    auth_type: WebhookAuthType
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WebhookAuthMethod:
    """A webhook auth method without its secret: what listings show. ``api_key`` is filled
    only in the answer to creating one (the one time it is shown)."""

    id: str
    project_id: str
    name: str
    auth_type: WebhookAuthType
    inserted_at: datetime
    updated_at: datetime
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """An attached method's opened secret: what checking a webhook request needs."""

    method_id: str
    auth_type: WebhookAuthType
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
