"""Collections as the management API shows and takes them: api/collections.py."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from fulmen.coordinator.api.schemas.common import InputDoc
from fulmen.store import CollectionInfo
from fulmen.store.collections import MAX_NAME_LENGTH


class CollectionIn(InputDoc):
    """A new collection: its name, unique across the instance (lower-case letters and
    digits, in words joined by one ``-``, ``_`` or ``.``, as Lightning's)."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=r"^[a-z0-9]+([-_.][a-z0-9]+)*$",
        examples=["patients-2024"],
    )


class CollectionDoc(BaseModel):
    """A collection, with how many items it holds. Its items are read and written at
    ``/collections/<name>``, with an API token or a run's token."""

    id: str
    project_id: str
    name: str
    item_count: int
    inserted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, collection: CollectionInfo) -> CollectionDoc:
        return cls(
            id=collection.id,
            project_id=collection.project_id,
            name=collection.name,
            item_count=collection.item_count,
            inserted_at=collection.inserted_at,
            updated_at=collection.updated_at,
        )
