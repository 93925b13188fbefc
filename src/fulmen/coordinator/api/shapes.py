"""What a refused body should have looked like: the shape of the object a 422 is about, read
from the API's own OpenAPI document, so a client that guessed wrong reads the fields it needed
in the answer instead of looking them up (issue 21: natural guesses at a credential's body got
FastAPI's raw errors and nothing else).

Pure: :func:`expected` takes the OpenAPI document, the route and the first error's location
(``["body", "jobs", 0, "adaptor"]``) and answers ``{"at": "body.jobs[0]", "fields": {...}}``:
each field of that object with its type in words, ``(optional)`` where it may be left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["describe", "expected"]

#: How deep a type is spelled out ("array of object"): a hint, not a schema.
_DEPTH: Final = 2
_REF: Final = "#/components/schemas/"

Schema = Mapping[str, Any]


def expected(
    openapi: Schema, method: str, path: str, loc: Sequence[str | int]
) -> dict[str, Any] | None:
    """The shape of the object holding the field at ``loc`` of the route's body, or ``None``
    when the error is not in a body the document describes. ``path`` is the route's path
    as written, with or without the prefix of the router it is in."""
    if not loc or loc[0] != "body":
        return None
    # A route of an included router knows its path without the router's prefix.
    paths = [p for p in openapi.get("paths", {}) if p == path or p.endswith(path)]
    if len(paths) != 1:
        return None
    try:
        operation = openapi["paths"][paths[0]][method.lower()]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
    except (KeyError, TypeError):
        return None
    components = openapi.get("components", {}).get("schemas", {})
    at, holder = "body", _resolve(schema, components)
    for part in loc[1:-1]:
        inner = _child(holder, part, components)
        if inner is None:
            break
        holder, at = inner, f"{at}[{part}]" if isinstance(part, int) else f"{at}.{part}"
    if isinstance(loc[-1], int) or "properties" not in holder:
        return {"at": at, "type": describe(holder, components)}
    required = set(holder.get("required", ()))
    fields = {
        name: describe(field, components) + ("" if name in required else " (optional)")
        for name, field in holder["properties"].items()
    }
    return {"at": at, "fields": fields}


def describe(schema: Schema, components: Schema, depth: int = 0) -> str:
    """A JSON schema's type in words: ``string``, ``integer or null``, ``one of a, b``,
    ``array of object``."""
    schema = _resolve(schema, components)
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = dict.fromkeys(describe(s, components, depth) for s in schema[key])
            return " or ".join(kinds)
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        if items and depth < _DEPTH:
            return f"array of {describe(items, components, depth + 1)}"
        return "array"
    if isinstance(kind, str):
        return kind
    return "any JSON value"


def _resolve(schema: Schema, components: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 10:
        name = str(schema["$ref"]).removeprefix(_REF)
        schema, seen = components.get(name, {}), seen + 1
    return schema


def _child(schema: Schema, part: str | int, components: Schema) -> Schema | None:
    """The schema of ``schema``'s member ``part`` (an object's field, an array's item), the
    non-null choice of an ``anyOf`` first."""
    for choice in schema.get("anyOf", ()):
        if _resolve(choice, components).get("type") != "null":
            schema = _resolve(choice, components)
            break
    if isinstance(part, int):
        items = schema.get("items")
        return _resolve(items, components) if items else None
    field = schema.get("properties", {}).get(part)
    return _resolve(field, components) if field else None
