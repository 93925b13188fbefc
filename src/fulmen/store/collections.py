"""Collections (issue 19): a project's key-value store that its jobs share across runs.

As Lightning has them: a collection belongs to one project and its name is unique across
the instance; an item is a key (up to :data:`MAX_KEY_LENGTH` characters) and a text value
(a job's adaptor writes JSON there), with the times it was inserted and last updated.

Writes keep the collection's ``item_count`` in the same transaction, after locking the
collection's row, so that its limit (:class:`CollectionLimits`) is checked without counting
rows and two writers never both count one new key. A bulk upsert is one statement whatever
its size. Listings are keyset pages in id (insertion) order: a page deep in 100,000 items
costs what the first does, and a stream reads page after page, each in its own short read
transaction (``SQLStore.stream_items``), never the whole collection at once.

Key patterns take ``*`` for any run of characters; every other character stands for itself
(the dialect's own wildcards are escaped: LIKE's ``%`` and ``_`` on PostgreSQL, GLOB's ``?``
and ``[`` on SQLite, whose GLOB tells case apart as PostgreSQL's LIKE does).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import orjson

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store.batches import BATCH_BYTES, BATCH_ROWS
from fulmen.store.db import Row, Tx
from fulmen.store.models.collections import (
    CollectionInfo,
    CollectionItem,
    CollectionLimits,
    ItemFilter,
)
from fulmen.store.models.common import Page
from fulmen.store.paging import check_limit, decode_cursor, make_page

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "CollectionLimits",
    "check_key",
    "check_name",
    "check_value",
    "create_collection",
    "delete_collection",
    "delete_item",
    "delete_items",
    "get_collection",
    "get_item",
    "key_pattern",
    "list_collections",
    "list_items",
    "project_collection_ids",
    "put_items",
]

MAX_KEY_LENGTH: Final = 255
MAX_NAME_LENGTH: Final = 100
#: Lightning's rule: lower-case letters and digits, in words joined by one ``-``, ``_`` or ``.``.
_NAME: Final = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")


def check_name(name: object) -> str:
    """``name`` if it may name a collection, else InputError ``bad_collection_name``."""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise InputError(
            f"{name!r} cannot name a collection: lower-case letters and digits, in words joined "
            f"by one '-', '_' or '.', at most {MAX_NAME_LENGTH} characters (like 'patients-2024')",
            code="bad_collection_name",
            field="name",
        )
    return name


def check_key(key: object, field: str = "key") -> str:
    """``key`` if it may be an item's key, else InputError ``bad_key``."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise InputError(
            f"an item's key is a string of 1 to {MAX_KEY_LENGTH} characters without NUL",
            code="bad_key",
            field=field,
        )
    return key


def check_value(value: object, limits: CollectionLimits, field: str = "value") -> str:
    """``value`` if it may be an item's value, else InputError ``bad_value`` (not text) or
    ``item_too_large``."""
    if not isinstance(value, str) or "\x00" in value:
        raise InputError(
            "an item's value is a string without NUL (a job's adaptor stores JSON text)",
            code="bad_value",
            field=field,
        )
    size = len(value) if value.isascii() else len(value.encode())
    if size > limits.max_value_bytes:
        raise InputError(
            f"an item's value is at most {limits.max_value_bytes} bytes; this one is {size}",
            code="item_too_large",
            field=field,
        )
    return value


def key_pattern(pattern: str, dialect: str) -> str:
    """A ``*`` pattern as the dialect's list and delete queries match it (module docstring)."""
    if dialect == "sqlite":
        return re.sub(r"[?\[]", lambda m: f"[{m.group()}]", pattern)
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


async def create_collection(tx: Tx, project_id: str, name: str, now: datetime) -> CollectionInfo:
    """A new, empty collection of ``project_id``.

    Raises:
        InputError: ``bad_collection_name``.
        ConflictError: ``collection_exists``: the name is taken, in this project or another.
    """
    check_name(name)
    if await tx.fetchone("get_collection_by_name", {"name": name}) is not None:
        raise ConflictError(
            f"a collection named {name} already exists (names are unique across the instance)",
            code="collection_exists",
            field="name",
        )
    params = {"id": secrets.token_hex(8), "project_id": project_id, "name": name, "now": now}
    row = await tx.fetchone("create_collection", params)
    assert row is not None  # INSERT ... RETURNING
    return _collection(tx, row)


async def get_collection(tx: Tx, name: str) -> CollectionInfo:
    """The collection named ``name`` (NotFoundError if none is)."""
    row = await tx.fetchone("get_collection_by_name", {"name": name})
    if row is None:
        raise NotFoundError(f"collection {name} does not exist", field="name")
    return _collection(tx, row)


async def list_collections(
    tx: Tx, project_id: str, *, cursor: str | None, limit: int
) -> Page[CollectionInfo]:
    """A page of ``project_id``'s collections by name, with their item counts."""
    after = None if cursor is None else decode_cursor(cursor, str)[0]
    params = {"project_id": project_id, "after": after, "limit": check_limit(limit) + 1}
    rows = [_collection(tx, row) for row in await tx.fetchall("list_collections", params)]
    return make_page(rows, limit, lambda c: (c.name,))


async def delete_collection(tx: Tx, collection_id: str) -> None:
    """Delete a collection with what is left of its items (delete_items goes first)."""
    await tx.execute("delete_collection", {"id": collection_id})


async def project_collection_ids(tx: Tx, project_id: str) -> list[str]:
    return [
        row["id"] for row in await tx.fetchall("project_collection_ids", {"project_id": project_id})
    ]


async def put_items(
    tx: Tx,
    collection_id: str,
    items: Sequence[tuple[str, str]],
    now: datetime,
    limits: CollectionLimits,
    dialect: str,
) -> int:
    """Insert or update ``items`` (key, value) in one statement; how many were given.

    Raises:
        InputError: ``bad_key``, ``bad_value``, ``item_too_large`` (``field`` is
            ``items[i].key`` or ``.value``), ``duplicate_key`` (a key given twice), or
            ``collection_full``: the collection would hold more than its limit. Nothing is
            written then.
        NotFoundError: the collection is gone.
    """
    keys: list[str] = []
    values: list[str] = []
    seen: set[str] = set()
    for index, (key, value) in enumerate(items):
        check_key(key, f"items[{index}].key")
        check_value(value, limits, f"items[{index}].value")
        if key in seen:
            raise InputError(
                f"the key {key!r} is given twice; give each key once",
                code="duplicate_key",
                field=f"items[{index}].key",
            )
        seen.add(key)
        keys.append(key)
        values.append(value)
    if not keys:
        return 0
    if await tx.fetchone("lock_collection", {"id": collection_id}) is None:
        raise NotFoundError(f"collection {collection_id} does not exist", field="name")
    existing = await tx.fetchone(
        "count_existing_keys", {"collection_id": collection_id, "keys": keys}
    )
    added = len(keys) - (int(existing["n"]) if existing else 0)
    grown = await tx.fetchone(
        "grow_collection",
        {"id": collection_id, "added": added, "max_items": limits.max_items, "now": now},
    )
    if grown is None:
        raise InputError(
            f"the collection would hold more than {limits.max_items} items: delete some first "
            "(the limit is FULMEN_COLLECTION_MAX_ITEMS)",
            code="collection_full",
        )
    pairs = (
        {"keys": keys, "values": values}
        if dialect == "postgres"
        else {"items": _pairs(keys, values)}
    )
    await tx.execute(
        "upsert_collection_items", {"collection_id": collection_id, "now": now, **pairs}
    )
    return len(keys)


async def get_item(tx: Tx, collection_id: str, key: str) -> CollectionItem | None:
    row = await tx.fetchone("get_collection_item", {"collection_id": collection_id, "key": key})
    return None if row is None else _item(tx, row)


async def delete_item(tx: Tx, collection_id: str, key: str, now: datetime) -> bool:
    """Delete the item ``key``; whether there was one."""
    params = {"collection_id": collection_id, "key": key}
    removed = await tx.execute("delete_collection_item", params)
    if removed:
        await tx.execute("shrink_collection", {"id": collection_id, "removed": removed, "now": now})
    return removed > 0


async def delete_items(
    tx: Tx, collection_id: str, pattern: str | None, now: datetime, dialect: str
) -> int:
    """Delete a batch of the items whose key matches ``pattern`` (every item: ``None``);
    how many. A batch is bounded (store/batches.py): call again until it deletes none."""
    matching = None if pattern is None else key_pattern(pattern, dialect)
    params = {
        "collection_id": collection_id,
        "pattern": matching,
        "limit": BATCH_ROWS,
        "max_bytes": BATCH_BYTES,
    }
    removed = await tx.execute("delete_collection_items_matching", params)
    if removed:
        await tx.execute("shrink_collection", {"id": collection_id, "removed": removed, "now": now})
    return removed


async def list_items(
    tx: Tx, collection_id: str, where: ItemFilter, limit: int, dialect: str
) -> list[CollectionItem]:
    """Up to ``limit`` items of the collection that ``where`` holds, in id order."""
    params = {
        "collection_id": collection_id,
        "after": where.after_id,
        "pattern": None if where.pattern is None else key_pattern(where.pattern, dialect),
        "created_after": where.created_after,
        "created_before": where.created_before,
        "updated_after": where.updated_after,
        "updated_before": where.updated_before,
        "limit": limit,
    }
    await tx.fetchone("plan_item_pages")
    return [_item(tx, row) for row in await tx.fetchall("list_collection_items", params)]


def _pairs(keys: list[str], values: list[str]) -> str:
    """``[[key, value], ...]`` as JSON text: SQLite's form of a bulk upsert's items."""
    return orjson.dumps([[k, v] for k, v in zip(keys, values, strict=True)]).decode()


def _collection(tx: Tx, row: Row) -> CollectionInfo:
    return CollectionInfo(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        item_count=int(row["item_count"]),
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )


def _item(tx: Tx, row: Row) -> CollectionItem:
    return CollectionItem(
        id=int(row["id"]),
        key=row["key"],
        value=row["value"],
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )
