"""Credentials: sealed at rest, listed without values, opened only for who may have them.

A body leaves the store only through ``get_credential_body`` (an OAuth2 credential's with its
current token over it: oauth2.py); given a run, it is refused unless a job of that run's
snapshot names the credential, or names a keychain that chose it for that run
(store/keychains.py: run_jobs) (issue 4: values go only to a worker
holding a run token for a run that uses them).

Values shorter than ``fulmen.scrub.MIN_SECRET_LENGTH`` are never masked in logs and outputs;
saving a credential with one logs a warning that names its fields (never their values).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from fulmen.errors import ConfigError, ConflictError, InputError, NotFoundError
from fulmen.scrub import MIN_SECRET_LENGTH, short_values
from fulmen.store import keychains
from fulmen.store.cipher import CredentialCipher
from fulmen.store.db import Row, Tx, loads
from fulmen.store.models.common import JSONValue
from fulmen.store.models.credentials import CredentialInfo, NewCredential
from fulmen.store.models.oauth2 import OAuth2Credential
from fulmen.store.oauth2 import get_oauth2, token_fields

__all__ = [
    "delete_credential",
    "get_credential",
    "get_credential_body",
    "list_credentials",
    "open_credential",
    "put_credential",
    "require_cipher",
]

log = logging.getLogger(__name__)


async def put_credential(
    tx: Tx, cipher: CredentialCipher | None, credential: NewCredential, now: datetime
) -> CredentialInfo:
    if not isinstance(credential.body, Mapping):
        raise InputError(f"credential {credential.id}: the body must be a JSON object")
    sealed = require_cipher(cipher).seal(credential.id, credential.body)
    row = await tx.fetchone(
        "upsert_credential",
        {
            "id": credential.id,
            "project_id": credential.project_id,
            "name": credential.name,
            "sealed_body": sealed,
            "now": now,
        },
    )
    if row is None:
        raise ConflictError(
            f"credential {credential.id} belongs to another project", field="project_id"
        )
    short = short_values(credential.body)
    if short:
        log.warning(
            "credential %s: %s shorter than %d characters, so not masked in logs and outputs",
            credential.id,
            ", ".join(short),
            MIN_SECRET_LENGTH,
        )
    return _info(tx, row)


async def get_credential_body(
    tx: Tx, cipher: CredentialCipher | None, credential_id: str, run_id: str | None
) -> dict[str, JSONValue]:
    body, _ = await open_credential(tx, cipher, credential_id, run_id)
    return body


async def open_credential(
    tx: Tx, cipher: CredentialCipher | None, credential_id: str, run_id: str | None
) -> tuple[dict[str, JSONValue], OAuth2Credential | None]:
    """The body (an OAuth2 credential's with its current token over it) and, for an OAuth2
    credential, its row: what a run's fetch needs to tell whether the token must be renewed,
    read at once."""
    if run_id is not None:
        await _check_run_uses(tx, run_id, credential_id)
    row = await tx.fetchone("get_credential", {"id": credential_id})
    if row is None:
        raise NotFoundError(f"credential {credential_id} does not exist", field="id")
    opener = require_cipher(cipher)
    body = opener.open(credential_id, bytes(row["sealed_body"]))
    assert isinstance(body, dict)  # put_credential seals objects only
    oauth2 = await get_oauth2(tx, opener, credential_id)
    return (body if oauth2 is None else body | token_fields(oauth2)), oauth2


async def get_credential(tx: Tx, credential_id: str) -> CredentialInfo:
    """The credential without its value (NotFoundError for an id that names none)."""
    row = await tx.fetchone("get_credential", {"id": credential_id})
    if row is None:
        raise NotFoundError(f"credential {credential_id} does not exist", field="id")
    return _info(tx, row)


async def list_credentials(tx: Tx, project_id: str) -> list[CredentialInfo]:
    rows = await tx.fetchall("list_credentials", {"project_id": project_id})
    return [_info(tx, row) for row in rows]


async def delete_credential(tx: Tx, credential_id: str) -> None:
    users = [row["id"] for row in await tx.fetchall("credential_users", {"id": credential_id})]
    if users:
        raise ConflictError(
            f"credential {credential_id} is used by job {', '.join(users)}; "
            "change those jobs first",
            field="id",
        )
    chains = await keychains.credential_keychains(tx, credential_id)
    if chains:
        raise ConflictError(
            f"credential {credential_id} can be chosen by keychain {', '.join(chains)}; "
            "change those keychains first",
            field="id",
        )
    if not await tx.execute("delete_credential", {"id": credential_id}):
        raise NotFoundError(f"credential {credential_id} does not exist", field="id")


async def _check_run_uses(tx: Tx, run_id: str, credential_id: str) -> None:
    row = await tx.fetchone("get_run_plan", {"id": run_id})
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist", field="run_id")
    jobs = await keychains.run_jobs(tx, run_id, loads(row["document"])["jobs"])
    if not any(job.get("credential_id") == credential_id for job in jobs):
        # Told apart from "no such credential" only in the message: a worker learns nothing
        # about credentials outside its run.
        raise NotFoundError(f"credential {credential_id} is not used by run {run_id}", field="id")


def require_cipher(cipher: CredentialCipher | None) -> CredentialCipher:
    """The cipher, or ConfigError: without the operator's key nothing sealed is stored or read."""
    if cipher is None:
        raise ConfigError(
            "this store was opened without a credential key, so it cannot store or read "
            "credentials",
            code="credential_key_missing",
        )
    return cipher


def _info(tx: Tx, row: Row) -> CredentialInfo:
    return CredentialInfo(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )
