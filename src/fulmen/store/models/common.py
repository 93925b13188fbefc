"""What every kind of stored value shares: JSON documents and pages of a listing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

__all__ = ["JSONValue", "Page"]

#: A JSON document as Python values. Inputs may be any mappings and sequences; what the store
#: gives back is plain dicts and lists.
JSONValue: TypeAlias = (
    Mapping[str, "JSONValue"] | Sequence["JSONValue"] | str | int | float | bool | None
)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing. Pass ``next_cursor`` back for the next; ``None`` at the end."""

    items: tuple[T, ...]
    next_cursor: str | None = None
