"""Keychains as given and as stored, and what one chose for a run (store/keychains.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["KeychainChoice", "KeychainInfo", "NewKeychain"]


@dataclass(frozen=True, slots=True)
class NewKeychain:
    id: str
    project_id: str
    name: str
    #: A JSONPath into the run's input as its worker gets it (``$.data.site_id``).
    path: str
    #: The value found at ``path`` -> the id of the credential it picks.
    entries: Mapping[str, str] = field(default_factory=dict)
    #: The credential picked when no entry matches; ``None``: such a run fails.
    default_credential_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeychainInfo:
    id: str
    project_id: str
    name: str
    path: str
    entries: Mapping[str, str]
    default_credential_id: str | None
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class KeychainChoice:
    """What a keychain of a run chose when the run was made, as the keychain was then."""

    keychain_id: str
    keychain_name: str
    path: str
    #: ``None``: no entry matched and there was no default; the run was made failed.
    credential_id: str | None
    #: The value at ``path`` that matched an entry; ``None`` when the default was taken (or
    #: nothing was).
    matched: str | None

    @property
    def by_default(self) -> bool:
        return self.credential_id is not None and self.matched is None
