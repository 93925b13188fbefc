"""Shared pieces of the REST API's documents: ids, timestamps, JSON bodies, pages and errors."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Generic, TypeVar
from uuid import uuid4

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)
from typing_extensions import TypeAliasType

from fulmen.store import (
    retention_policy,
)

T = TypeVar("T")


def _new_id() -> str:
    return str(uuid4())


#: The largest count or duration in milliseconds a document may hold: PostgreSQL's
#: ``integer`` columns (SQLite's are 64-bit) hold no more.
MAX_INT32: Final = 2**31 - 1
#: The longest retention period, in days (100 years): a longer one is "forever" (``null``),
#: and one near ``timedelta``'s limit would make the retention sweep's dates overflow.
MAX_RETENTION_DAYS: Final = retention_policy.MAX_DAYS
#: How deep arrays and objects may nest in a JSON document stored as it was sent (a
#: credential's body, a manual run's input); the store's encoder stops at 255.
MAX_JSON_DEPTH: Final = 64
#: Numbers in such a document fit 64 bits (-2^63 <= n < 2^63), as the store's JSON encoder
#: writes integers.
_MIN_NUMBER: Final = -(2**63)
_NUMBER_BOUND: Final = 2**63

#: Strings in it (keys too) hold no NUL character: PostgreSQL's jsonb cannot store one, so
#: the store refuses it in both dialects.
_NO_NUL: Final = "^[^\\u0000]*$"
_JSON_VALUE_REF: Final = {"$ref": "#/components/schemas/JsonValue"}

#: What the OpenAPI document says such a document holds (all :func:`_storable` checks but the
#: depth: JSON Schema has no word for it). Written out, as FastAPI places it, because pydantic
#: cannot say "a number" without an integer branch nor bound a key.
JsonValue = TypeAliasType(
    "JsonValue",
    Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "propertyNames": {"pattern": _NO_NUL},
                        "additionalProperties": _JSON_VALUE_REF,
                    },
                    {"type": "array", "items": _JSON_VALUE_REF},
                    # bounds exact as doubles: FastAPI writes them as floats
                    {"type": "number", "minimum": _MIN_NUMBER, "exclusiveMaximum": _NUMBER_BOUND},
                    {"type": "string", "pattern": _NO_NUL},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            }
        ),
    ],
)


def _storable(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"arrays and objects nest more than {MAX_JSON_DEPTH} deep")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if not _MIN_NUMBER <= value < _NUMBER_BOUND:
            raise ValueError("a number beyond 64 bits (-2^63 to 2^63-1)")
    elif isinstance(value, str):
        _text(value)
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text(key)
            _storable(item, depth + 1)


def _text(value: str) -> None:
    if "\x00" in value:
        raise ValueError("must not hold the NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must be UTF-8, without lone surrogates") from None


def _json_object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    _storable(value)
    return value


#: A JSON object the store keeps as it was sent: 64-bit integers, UTF-8 strings, at most
#: :data:`MAX_JSON_DEPTH` levels deep (422 otherwise).
JsonObject = Annotated[
    dict[str, Any],
    PlainValidator(_json_object, json_schema_input_type=dict[str, JsonValue]),
    Field(
        description=f"A JSON object, nested at most {MAX_JSON_DEPTH} deep",
        json_schema_extra={"propertyNames": {"pattern": _NO_NUL}},
    ),
]
#: No ``/`` in an id: a path cannot carry one (``%2F`` is decoded before routing), so a
#: document whose id had one could be made but never read, changed or deleted.
_ID_PATTERN: Final = "^[^/]+$"
#: The id of a new document; one is made when absent.
NewId = Annotated[str, Field(default_factory=_new_id, min_length=1, pattern=_ID_PATTERN)]
#: An id in a route's path: never empty (``/api/projects/`` is the listing, not a project).
PathId = Annotated[str, Path(min_length=1, pattern=_ID_PATTERN)]

_RFC3339: Final = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII
)


def _rfc3339(value: object) -> object:
    """Only what the schema's ``date-time`` allows: pydantic alone also takes a number of
    seconds (``0.5``) or a date."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("a date-time as RFC 3339 has it, e.g. 2025-01-31T12:00:00Z")
    return value


#: A ``date-time`` query parameter, with its zone.
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]


class InputDoc(BaseModel):
    """A document the API reads: its fields as the schema says, and nothing else (strict: no
    ``true`` or ``"1"`` where an integer goes, no number where a string does)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PageDoc(BaseModel, Generic[T]):
    items: list[T]
    #: Pass as ``cursor`` for the next page; ``null`` on the last.
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorDoc(BaseModel):
    error: ErrorBody


class DetailDoc(BaseModel):
    """A 401 (what is wrong with the token) or a 400 (a body that is not JSON)."""

    detail: str
