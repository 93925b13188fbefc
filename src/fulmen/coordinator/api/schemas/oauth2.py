"""The REST API's OAuth2 credential documents (issue 19): settings and secrets in, state out
(never a token nor the client secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc, JsonObject, NewId
from fulmen.store import CredentialInfo, OAuth2State

__all__ = ["OAuth2CredentialDoc", "OAuth2CredentialIn"]


class OAuth2CredentialIn(InputDoc):
    """An OAuth2 credential: the provider, the client, and fields to give a run besides the
    token. Connecting it: the client-credentials grant at once; the authorization-code grant
    from the dashboard ("Connect"), where a person consents at the provider."""

    id: NewId
    name: str = Field(min_length=1)
    grant: Literal["authorization_code", "client_credentials"]
    token_url: str
    #: Where a person consents (authorization-code grant only).
    authorization_url: str = ""
    client_id: str
    #: Written, never read back.
    client_secret: str = Field(min_length=1)
    scopes: list[str] = Field(default_factory=list)
    #: Fields a run gets beside the token (``state.configuration``): written, never read back.
    body: JsonObject = Field(default_factory=dict)


class OAuth2CredentialDoc(BaseModel):
    """An OAuth2 credential's state: never a token nor the client secret."""

    id: str
    project_id: str
    name: str
    grant: str
    token_url: str
    authorization_url: str
    client_id: str
    scopes: list[str]
    #: ``not_connected``, ``connected`` or ``needs_reauthorization``.
    status: str
    #: Why it needs re-authorisation (the provider's words), else "".
    problem: str
    expires_at: datetime | None
    refreshed_at: datetime | None

    @classmethod
    def of(cls, info: CredentialInfo, state: OAuth2State) -> OAuth2CredentialDoc:
        settings = state.settings
        return cls(
            id=info.id,
            project_id=info.project_id,
            name=info.name,
            grant=settings.grant.value,
            token_url=settings.token_url,
            authorization_url=settings.authorization_url,
            client_id=settings.client_id,
            scopes=list(settings.scopes),
            status=state.status.value,
            problem=state.problem,
            expires_at=state.expires_at,
            refreshed_at=state.refreshed_at,
        )
