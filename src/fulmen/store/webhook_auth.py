"""Webhook auth methods: a project's API keys and Basic logins, attached to its triggers.

The secret part (the key, or the username and password) is sealed with the credentials'
cipher (AES-256-GCM under the operator's key), bound to the method's id, and leaves the
store only through :func:`trigger_secrets`, opened, for checking one request (the check is
fulmen.coordinator.webhook_auth's). Listings carry names and types only; the API key of a
new method is given back once, in the answer to creating it, as Lightning shows it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store.cipher import CredentialCipher
from fulmen.store.credentials import require_cipher
from fulmen.store.db import Row, Tx
from fulmen.store.models.catalog import TriggerType
from fulmen.store.models.webhook_auth import (
    NewWebhookAuthMethod,
    WebhookAuthMethod,
    WebhookAuthType,
    WebhookSecret,
)

__all__ = [
    "create_method",
    "delete_method",
    "get_method",
    "list_methods",
    "list_trigger_methods",
    "set_trigger_methods",
    "trigger_secrets",
]

#: The seal is bound to the method's id in a namespace of its own (cipher.py).
PURPOSE = "webhook-auth"
#: Lightning makes API keys of 32 random bytes, written as hex.
API_KEY_BYTES = 32
#: Lightning's bounds on a Basic password (bcrypt's, there; kept for compatibility).
PASSWORD_LENGTHS = range(8, 73)


async def create_method(
    tx: Tx, cipher: CredentialCipher | None, method: NewWebhookAuthMethod, now: datetime
) -> WebhookAuthMethod:
    """Store a new method; the answer carries its API key (the only time it is shown)."""
    kind = _kind(method.auth_type)
    secret = _secret(method, kind)
    sealed = require_cipher(cipher).seal(method.id, secret, purpose=PURPOSE)
    if await tx.fetchone("get_webhook_auth_method", {"id": method.id}) is not None:
        raise ConflictError(f"webhook auth method {method.id} already exists", field="id")
    if not method.name.strip():
        raise InputError("a webhook auth method needs a name")
    await tx.execute(
        "insert_webhook_auth_method",
        {
            "id": method.id,
            "project_id": method.project_id,
            "name": method.name,
            "auth_type": kind,
            "sealed_secret": sealed,
            "now": now,
        },
    )
    stored = await get_method(tx, method.id)
    return _with_key(stored, secret.get("api_key"))


async def get_method(tx: Tx, method_id: str) -> WebhookAuthMethod:
    row = await tx.fetchone("get_webhook_auth_method", {"id": method_id})
    if row is None:
        raise NotFoundError(f"webhook auth method {method_id} does not exist", field="id")
    return _method(tx, row)


async def list_methods(tx: Tx, project_id: str) -> list[WebhookAuthMethod]:
    rows = await tx.fetchall("list_webhook_auth_methods", {"project_id": project_id})
    return [_method(tx, row) for row in rows]


async def delete_method(tx: Tx, method_id: str) -> None:
    """Deletes it and detaches it from every trigger (a trigger left with none is open)."""
    if not await tx.execute("delete_webhook_auth_method", {"id": method_id}):
        raise NotFoundError(f"webhook auth method {method_id} does not exist", field="id")


async def set_trigger_methods(
    tx: Tx, trigger_id: str, method_ids: Sequence[str]
) -> list[WebhookAuthMethod]:
    """Make ``method_ids`` the methods the webhook trigger takes (none: open); every one must
    be a method of the trigger's project."""
    trigger = await tx.fetchone("get_trigger", {"id": trigger_id})
    if trigger is None:
        raise NotFoundError(f"trigger {trigger_id} does not exist", field="trigger_id")
    if trigger["type"] != TriggerType.WEBHOOK:
        raise InputError(f"trigger {trigger_id} is a {trigger['type']} trigger, not a webhook")
    for method_id in method_ids:
        row = await tx.fetchone("get_webhook_auth_method", {"id": method_id})
        if row is None or row["project_id"] != trigger["project_id"]:
            raise NotFoundError(
                f"webhook auth method {method_id} is not a method of project "
                f"{trigger['project_id']}",
                field="method_ids",
            )
    await tx.execute("detach_trigger_auth_methods", {"trigger_id": trigger_id})
    for method_id in dict.fromkeys(method_ids):
        await tx.execute(
            "attach_trigger_auth_method", {"trigger_id": trigger_id, "method_id": method_id}
        )
    return await list_trigger_methods(tx, trigger_id)


async def list_trigger_methods(tx: Tx, trigger_id: str) -> list[WebhookAuthMethod]:
    rows = await tx.fetchall("list_trigger_auth_methods", {"trigger_id": trigger_id})
    return [_method(tx, row) for row in rows]


async def trigger_secrets(
    tx: Tx, cipher: CredentialCipher | None, trigger_id: str
) -> list[WebhookSecret]:
    """The opened secrets of the methods the trigger takes; none: the trigger is open."""
    rows = await tx.fetchall("trigger_auth_secrets", {"trigger_id": trigger_id})
    found: list[WebhookSecret] = []
    for row in rows:
        sealed = bytes(row["sealed_secret"])
        body = require_cipher(cipher).open(row["id"], sealed, purpose=PURPOSE)
        assert isinstance(body, dict)  # create_method seals objects only
        found.append(
            WebhookSecret(
                method_id=row["id"],
                auth_type=WebhookAuthType(row["auth_type"]),
                api_key=body.get("api_key"),
                username=body.get("username"),
                password=body.get("password"),
            )
        )
    return found


def _kind(auth_type: object) -> WebhookAuthType:
    try:
        return WebhookAuthType(str(auth_type))
    except ValueError:
        known = ", ".join(kind.value for kind in WebhookAuthType)
        raise InputError(f"auth_type is one of {known}, not {auth_type!r}") from None


def _secret(method: NewWebhookAuthMethod, kind: WebhookAuthType) -> dict[str, str]:
    if kind is WebhookAuthType.API:
        if method.username is not None or method.password is not None:
            raise InputError("an 'api' method takes an api_key, not a username or password")
        key = method.api_key if method.api_key is not None else _new_key()
        if len(key) < 16:
            raise InputError("an API key is at least 16 characters long")
        return {"api_key": key}
    if method.api_key is not None:
        raise InputError("a 'basic' method takes a username and password, not an api_key")
    if not method.username or ":" in method.username:
        raise InputError("a 'basic' method needs a username without ':'")
    if method.password is None or len(method.password) not in PASSWORD_LENGTHS:
        raise InputError(
            f"a 'basic' method needs a password of {PASSWORD_LENGTHS.start} to "
            f"{PASSWORD_LENGTHS.stop - 1} characters"
        )
    return {"username": method.username, "password": method.password}


def _new_key() -> str:
    return secrets.token_hex(API_KEY_BYTES)


def _with_key(method: WebhookAuthMethod, api_key: str | None) -> WebhookAuthMethod:
    return WebhookAuthMethod(
        id=method.id,
        project_id=method.project_id,
        name=method.name,
        auth_type=method.auth_type,
        inserted_at=method.inserted_at,
        updated_at=method.updated_at,
        api_key=api_key,
    )


def _method(tx: Tx, row: Row) -> WebhookAuthMethod:
    return WebhookAuthMethod(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        auth_type=WebhookAuthType(row["auth_type"]),
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )
