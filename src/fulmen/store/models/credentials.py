"""Credentials as given and as listed (never their values): credentials.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from fulmen.store.models.common import JSONValue

__all__ = ["CredentialInfo", "NewCredential"]


@dataclass(frozen=True, slots=True)
class NewCredential:
    id: str
    project_id: str
    name: str
    #: The secret document (``state.configuration`` of the jobs using it).
    body: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential without its value: what listings show."""

    id: str
    project_id: str
    name: str
    inserted_at: datetime
    updated_at: datetime
