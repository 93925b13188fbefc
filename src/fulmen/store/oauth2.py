"""OAuth2 credentials (issue 19): the provider's settings, the client secret and the tokens
sealed under the credential key, the connection's status, and the refresh lease.

An OAuth2 credential is a credential (credentials.py: its name, project, and a sealed body of
fields given besides the token) with one row of ``oauth2_credentials``. What a worker gets
for it is that body with the token's fields over it (:func:`token_fields`), which is what
``credentials.get_credential_body`` answers, so the run's scrubber masks the token it holds
now. The secrets are sealed with the purpose ``oauth2``, so they never open as a body.

The refresh lease (:func:`take_lease`) is one conditional UPDATE: on PostgreSQL it takes the
row's lock for the statement, on SQLite the database's write lock; either way one caller
gets it and the others see it held (coordinator/oauth2_refresh.py says why a lease rather than
a lock held across the provider's answer).

Authorizations begun from the dashboard are kept under the SHA-256 of their state until their
callback takes one, once, or it expires, as single sign-on's are (sso_requests.py).

Every function that seals or opens takes the cipher the caller has made sure of
(credentials.require_cipher).
"""

from __future__ import annotations

from datetime import datetime

from fulmen.errors import NotFoundError
from fulmen.store.cipher import CredentialCipher
from fulmen.store.db import Row, Tx, time_or_none
from fulmen.store.models.common import JSONValue
from fulmen.store.models.oauth2 import (
    Grant,
    OAuth2Authorization,
    OAuth2Credential,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2State,
    OAuth2Status,
)

__all__ = [
    "get_oauth2",
    "get_oauth2_state",
    "list_oauth2_states",
    "put_oauth2",
    "put_oauth2_authorization",
    "release_lease",
    "save_tokens",
    "set_status",
    "take_lease",
    "take_oauth2_authorization",
    "token_fields",
]

_PURPOSE = "oauth2"


async def put_oauth2(
    tx: Tx,
    cipher: CredentialCipher,
    credential_id: str,
    settings: OAuth2Settings,
    secrets: OAuth2Secrets,
    *,
    status: OAuth2Status,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    """Create or replace the row (with these tokens, or none): also gives back a lease."""
    await tx.execute(
        "insert_oauth2_credential",
        {
            "id": credential_id,
            "grant_type": settings.grant.value,
            "authorization_url": settings.authorization_url,
            "token_url": settings.token_url,
            "client_id": settings.client_id,
            "scopes": " ".join(settings.scopes),
            "sealed_secrets": _seal(cipher, credential_id, secrets),
            "status": status.value,
            "problem": "",
            "expires_at": expires_at,
            "refreshed_at": now if secrets.access_token else None,
        },
    )


async def get_oauth2(
    tx: Tx, cipher: CredentialCipher, credential_id: str
) -> OAuth2Credential | None:
    """The credential's OAuth2 row with its secrets opened; ``None``: not an OAuth2 one."""
    row = await tx.fetchone("get_oauth2_credential", {"id": credential_id})
    return None if row is None else _opened(tx, cipher, row)


async def get_oauth2_state(tx: Tx, credential_id: str) -> OAuth2State:
    row = await tx.fetchone("get_oauth2_credential", {"id": credential_id})
    if row is None:
        raise NotFoundError(f"credential {credential_id} is not an OAuth2 credential", field="id")
    return _state(tx, row)


async def list_oauth2_states(tx: Tx, project_id: str) -> list[OAuth2State]:
    rows = await tx.fetchall("list_oauth2_credentials", {"project_id": project_id})
    return [_state(tx, row) for row in rows]


async def take_lease(
    tx: Tx,
    cipher: CredentialCipher,
    credential_id: str,
    holder: str,
    until: datetime,
    now: datetime,
) -> OAuth2Credential | None:
    """The credential as it is now, with the lease to refresh it until ``until``; ``None``
    when someone else holds the lease."""
    row = await tx.fetchone(
        "take_oauth2_lease", {"id": credential_id, "holder": holder, "until": until, "now": now}
    )
    return None if row is None else _opened(tx, cipher, row)


async def save_tokens(
    tx: Tx,
    cipher: CredentialCipher,
    credential_id: str,
    secrets: OAuth2Secrets,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    await tx.execute(
        "save_oauth2_tokens",
        {
            "id": credential_id,
            "sealed_secrets": _seal(cipher, credential_id, secrets),
            "expires_at": expires_at,
            "now": now,
        },
    )


async def set_status(tx: Tx, credential_id: str, status: OAuth2Status, problem: str) -> None:
    await tx.execute(
        "set_oauth2_status", {"id": credential_id, "status": status.value, "problem": problem}
    )


async def release_lease(tx: Tx, credential_id: str, holder: str) -> None:
    await tx.execute("release_oauth2_lease", {"id": credential_id, "holder": holder})


async def put_oauth2_authorization(
    tx: Tx, digest: str, authorization: OAuth2Authorization, now: datetime
) -> None:
    await tx.execute("delete_expired_oauth2_authorizations", {"now": now})
    await tx.execute(
        "insert_oauth2_authorization",
        {
            "digest": digest,
            "credential_id": authorization.credential_id,
            "session_digest": authorization.session_digest,
            "verifier": authorization.verifier,
            "redirect_uri": authorization.redirect_uri,
            "expires_at": authorization.expires_at,
        },
    )


async def take_oauth2_authorization(
    tx: Tx, digest: str, now: datetime
) -> OAuth2Authorization | None:
    """The authorization kept under ``digest``, removed; ``None`` if none or expired."""
    row = await tx.fetchone("take_oauth2_authorization", {"digest": digest})
    if row is None:
        return None
    expires_at = tx.time(row["expires_at"])
    if expires_at <= now:
        return None
    return OAuth2Authorization(
        row["credential_id"],
        row["session_digest"],
        row["verifier"],
        row["redirect_uri"],
        expires_at,
    )


def token_fields(credential: OAuth2Credential) -> dict[str, JSONValue]:
    """What a worker gets of the token, over the credential's body: the fields a JavaScript
    adaptor reads (``access_token``, as Lightning gives it, with ``token_type``, ``scope``
    and ``expires_at`` in seconds since the epoch). Never the refresh token nor the client
    secret: refreshing is the coordinator's job, so they never leave it. Nothing without an
    access token."""
    secrets = credential.secrets
    if not secrets.access_token:
        return {}
    fields: dict[str, JSONValue] = {
        "access_token": secrets.access_token,
        "token_type": secrets.token_type,
    }
    if secrets.scope:
        fields["scope"] = secrets.scope
    if credential.state.expires_at is not None:
        fields["expires_at"] = int(credential.state.expires_at.timestamp())
    return fields


def _seal(cipher: CredentialCipher, credential_id: str, secrets: OAuth2Secrets) -> bytes:
    document = {
        "client_secret": secrets.client_secret,
        "access_token": secrets.access_token,
        "refresh_token": secrets.refresh_token,
        "token_type": secrets.token_type,
        "scope": secrets.scope,
    }
    return cipher.seal(credential_id, document, purpose=_PURPOSE)


def _opened(tx: Tx, cipher: CredentialCipher, row: Row) -> OAuth2Credential:
    credential_id = row["credential_id"]
    opened = cipher.open(credential_id, bytes(row["sealed_secrets"]), purpose=_PURPOSE)
    assert isinstance(opened, dict)  # _seal seals objects only
    secrets = OAuth2Secrets(**{k: str(v) for k, v in opened.items()})
    return OAuth2Credential(_state(tx, row), secrets)


def _state(tx: Tx, row: Row) -> OAuth2State:
    settings = OAuth2Settings(
        grant=Grant(row["grant_type"]),
        token_url=row["token_url"],
        client_id=row["client_id"],
        authorization_url=row["authorization_url"],
        scopes=tuple(row["scopes"].split()),
    )
    return OAuth2State(
        credential_id=row["credential_id"],
        settings=settings,
        status=OAuth2Status(row["oauth2_status"]),
        problem=row["problem"],
        expires_at=time_or_none(tx, row["expires_at"]),
        refreshed_at=time_or_none(tx, row["refreshed_at"]),
    )
