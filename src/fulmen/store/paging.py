"""Keyset pagination: opaque cursors holding the sort key of the last item of a page.

Keyset rather than OFFSET, so that a page costs the same deep in a listing of 100,000 runs as
at its start, and rows inserted meanwhile neither repeat nor skip items.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from fulmen.errors import InputError
from fulmen.store.models.common import Page

__all__ = ["MAX_LIMIT", "check_limit", "decode_cursor", "encode_cursor", "make_page"]

T = TypeVar("T")

MAX_LIMIT = 1000


def encode_cursor(*key: str | int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[str | int, ...]:
    """The key a cursor holds, checked against the expected types; InputError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InputError(f"not a cursor of this listing: {cursor!r}") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(part) is kind for part, kind in zip(key, types, strict=True))
    ):
        raise InputError(f"not a cursor of this listing: {cursor!r}")
    return tuple(key)


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"a page holds 1 to {MAX_LIMIT} items, not {limit!r}")
    return limit


def make_page(rows: Sequence[T], limit: int, key: Callable[[T], tuple[str | int, ...]]) -> Page[T]:
    """A page from up to ``limit + 1`` items: the extra one only says that more follow."""
    if len(rows) <= limit:
        return Page(tuple(rows))
    items = tuple(rows[:limit])
    return Page(items, encode_cursor(*key(items[-1])))
