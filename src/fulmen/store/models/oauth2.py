"""OAuth2 credentials as stored (issue 19): the provider's settings, the sealed client secret
and tokens, and whether the credential is connected; store/oauth2.py keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "Grant",
    "OAuth2Authorization",
    "OAuth2Credential",
    "OAuth2Secrets",
    "OAuth2Settings",
    "OAuth2State",
    "OAuth2Status",
]


class Grant(StrEnum):
    """How the coordinator gets a token: a person consents at the provider (the code flow
    with PKCE, RFC 6749 §4.1 and RFC 7636), or the client alone (RFC 6749 §4.4)."""

    AUTHORIZATION_CODE = "authorization_code"
    CLIENT_CREDENTIALS = "client_credentials"


class OAuth2Status(StrEnum):
    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    #: The provider refused the refresh: a person must connect the credential again.
    NEEDS_REAUTHORIZATION = "needs_reauthorization"


@dataclass(frozen=True, slots=True)
class OAuth2Settings:
    """The provider and the client: nothing secret (the client secret is sealed)."""

    grant: Grant
    token_url: str
    client_id: str
    #: Empty for the client-credentials grant (no browser goes to the provider).
    authorization_url: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OAuth2Secrets:
    """What is sealed under the credential key: never shown, never logged."""

    client_secret: str = field(repr=False)
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    token_type: str = "Bearer"
    #: The scopes the provider granted, as it said them (space-separated).
    scope: str = ""


@dataclass(frozen=True, slots=True)
class OAuth2State:
    """An OAuth2 credential as the API and the dashboard show it: never a token."""

    credential_id: str
    settings: OAuth2Settings
    status: OAuth2Status
    #: Why it needs re-authorisation (the provider's error), else "".
    problem: str
    expires_at: datetime | None
    refreshed_at: datetime | None


@dataclass(frozen=True, slots=True)
class OAuth2Credential:
    """The state with its opened secrets: what the coordinator refreshes."""

    state: OAuth2State
    secrets: OAuth2Secrets


@dataclass(frozen=True, slots=True)
class OAuth2Authorization:
    """A "Connect" begun from the dashboard, kept until its callback takes it."""

    credential_id: str
    #: The SHA-256 of the dashboard session that began it: only that session may finish it.
    session_digest: str
    verifier: str = field(repr=False)
    redirect_uri: str
    expires_at: datetime
