"""Keychains and what they chose for a run: the documents of api/keychains.py and of a run's
answer (api/schemas/runs.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc, NewId
from fulmen.store import KeychainChoice, KeychainInfo, NewKeychain

__all__ = ["KeychainChoiceDoc", "KeychainDoc", "KeychainIn"]


class KeychainIn(InputDoc):
    id: NewId
    name: str = Field(min_length=1, max_length=255)
    path: str = Field(
        min_length=1,
        max_length=500,
        description="A JSONPath into each run's input as its jobs get it, starting with $ "
        "($.data.site_id: the site_id of a webhook's body). Keys and indexes only (no "
        "filters); a path that cannot be read is a 422 (bad_path).",
    )
    entries: dict[str, str] = Field(
        default={},
        description="The value found at path (a string; a number or boolean as its JSON "
        "text: 42, true) -> the id of the credential of the project it picks. A credential "
        "of another project, or none, is a 422 (unknown_credential).",
    )
    default_credential_id: str | None = Field(
        default=None,
        description="The credential picked when no entry matches. Without one, a run whose "
        "value matches no entry is made failed (exception, CredentialError) and never "
        "reaches a worker.",
    )

    def to_store(self, project_id: str, keychain_id: str) -> NewKeychain:
        return NewKeychain(
            id=keychain_id,
            project_id=project_id,
            name=self.name,
            path=self.path,
            entries=dict(self.entries),
            default_credential_id=self.default_credential_id,
        )


class KeychainDoc(BaseModel):
    """A keychain: it holds credential ids, never a credential's value."""

    id: str
    project_id: str
    name: str
    path: str
    entries: dict[str, str]
    default_credential_id: str | None
    inserted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: KeychainInfo) -> KeychainDoc:
        fields = {name: getattr(info, name) for name in cls.model_fields}
        return cls(**{**fields, "entries": dict(info.entries)})


class KeychainChoiceDoc(BaseModel):
    """What a keychain of the run chose when the run was made, as the keychain was then."""

    keychain_id: str
    keychain_name: str
    path: str
    credential_id: str | None = Field(
        description="The credential the run's jobs naming the keychain use; null: none was "
        "chosen and the run was made failed."
    )
    matched: str | None = Field(
        description="The value at path that matched an entry; null when the default was "
        "taken (or nothing was)."
    )
    by_default: bool

    @classmethod
    def of(cls, choice: KeychainChoice) -> KeychainChoiceDoc:
        return cls(
            keychain_id=choice.keychain_id,
            keychain_name=choice.keychain_name,
            path=choice.path,
            credential_id=choice.credential_id,
            matched=choice.matched,
            by_default=choice.by_default,
        )
