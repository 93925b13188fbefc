"""The REST API's bearer tokens, kept as digests: what the coordinator needs to check one.

Minting and checking tokens (the secret, its digest, constant-time comparison) is the
coordinator's business; the store only keeps ``(id, name, digest)`` rows, whose they are
(a user's, or one project's with a role: models/api_tokens.py), and when each was last used
(for the list a person reads to decide which to revoke).
"""

from __future__ import annotations

from datetime import datetime

from fulmen.errors import ConflictError, NotFoundError
from fulmen.store.db import Row, Tx, time_or_none
from fulmen.store.models.api_tokens import ApiToken
from fulmen.store.models.users import Role

__all__ = [
    "delete_api_token",
    "get_api_token",
    "list_api_tokens",
    "put_api_token",
    "touch_api_token",
]


async def put_api_token(tx: Tx, token: ApiToken, now: datetime) -> ApiToken:
    if await tx.fetchone("get_api_token", {"id": token.id}) is not None:
        raise ConflictError(f"API token {token.id} already exists", field="id")
    await tx.execute(
        "insert_api_token",
        {
            "id": token.id,
            "name": token.name,
            "digest": token.digest,
            "now": now,
            "user_id": token.user_id,
            "project_id": token.project_id,
            "role": token.role,
        },
    )
    return await get_api_token(tx, token.id)


async def get_api_token(tx: Tx, token_id: str) -> ApiToken:
    row = await tx.fetchone("get_api_token", {"id": token_id})
    if row is None:
        raise NotFoundError(f"API token {token_id} does not exist", field="id")
    return _token(tx, row)


async def list_api_tokens(
    tx: Tx, user_id: str | None = None, project_id: str | None = None
) -> list[ApiToken]:
    """Every token, or ``user_id``'s personal tokens, or ``project_id``'s service tokens."""
    if user_id is not None:
        rows = await tx.fetchall("list_user_api_tokens", {"user_id": user_id})
    elif project_id is not None:
        rows = await tx.fetchall("list_project_api_tokens", {"project_id": project_id})
    else:
        rows = await tx.fetchall("list_api_tokens")
    return [_token(tx, row) for row in rows]


async def delete_api_token(tx: Tx, token_id: str) -> None:
    if not await tx.execute("delete_api_token", {"id": token_id}):
        raise NotFoundError(f"API token {token_id} does not exist", field="id")


async def touch_api_token(tx: Tx, token_id: str, now: datetime) -> None:
    """Note that the token was used ``now``; a token deleted meanwhile is no error."""
    await tx.execute("touch_api_token", {"id": token_id, "now": now})


def _token(tx: Tx, row: Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        digest=row["digest"],
        inserted_at=tx.time(row["inserted_at"]),
        last_used_at=time_or_none(tx, row["last_used_at"]),
        user_id=row["user_id"],
        project_id=row["project_id"],
        role=Role(row["role"]) if row["role"] else None,
    )
