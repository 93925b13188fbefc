"""Collections and their items as the store gives them: store/collections.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["CollectionInfo", "CollectionItem", "CollectionLimits", "ItemFilter"]


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    id: str
    project_id: str
    #: Unique across the instance: ``/collections/<name>`` names one collection.
    name: str
    item_count: int
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CollectionItem:
    #: The item's place in its collection's order (insertion order): what cursors hold.
    id: int
    key: str
    #: Text, as Lightning stores it: a job's adaptor writes JSON there and reads it back.
    value: str
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items of a collection a listing or a stream holds: keys matching ``pattern``
    (``*`` stands for any characters; ``None`` every key), inserted and last updated within
    ``[after, before)`` where given, after the item with id ``after_id``."""

    pattern: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    after_id: int = 0


@dataclass(frozen=True, slots=True)
class CollectionLimits:
    """What one item and one collection may hold (the coordinator's settings)."""

    #: The largest value, in bytes of UTF-8.
    max_value_bytes: int = 1024 * 1024
    #: The most items in one collection.
    max_items: int = 1_000_000
