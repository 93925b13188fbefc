"""The REST API reference, written from the coordinator's own OpenAPI document.

:func:`coordinator_openapi` builds the coordinator's app as ``fulmen server`` does, on a
throwaway SQLite store and a fresh key pair, and asks it for the document it serves at
``/openapi.json``; nothing is fetched and no server starts. :func:`render` turns the document
into Markdown: each operation under its tag with its parameters, body and answers, then each
schema with its fields, linked from where they are used.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from fulmen import keys as keyring
from fulmen.cli.docs.markdown import cell, paragraphs
from fulmen.config import CoordinatorSettings
from fulmen.coordinator import build_app, build_coordinator
from fulmen.coordinator.core import Keys
from fulmen.store import open_store

__all__ = ["coordinator_openapi", "render"]

Document = Mapping[str, Any]

_REF: Final = "#/components/schemas/"
_METHODS: Final = ("get", "post", "put", "patch", "delete")


def coordinator_openapi() -> dict[str, Any]:
    """The coordinator's OpenAPI document, as ``GET /openapi.json`` answers it."""
    return asyncio.run(_openapi())


async def _openapi() -> dict[str, Any]:
    generated = keyring.generate()
    keys = Keys(generated.worker_secret, keyring.load_private_key(generated.private_key))
    with tempfile.TemporaryDirectory(prefix="fulmen-docs-") as folder:
        settings = CoordinatorSettings(data_dir=folder, dashboard_editor_build=False)
        url = f"sqlite:///{Path(folder) / 'fulmen.db'}"
        async with await open_store(url, credential_key=None) as store:
            app = build_app(build_coordinator(settings, store, keys=keys), services=False)
            return app.openapi()


def render(document: Document) -> str:
    """The operations by tag, then the schemas, as Markdown (headings from level 2)."""
    schemas = document.get("components", {}).get("schemas", {})
    by_tag: dict[str, list[str]] = {}
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append(_operation(method, path, operation, schemas))
    parts = []
    for tag, operations in by_tag.items():
        parts += [f"## {cell(tag.capitalize())}", "", *operations]
    parts += ["## Schemas", ""]
    for name in sorted(schemas):
        parts.append(_schema(name, schemas[name], schemas))
    return "\n".join(parts)


def _operation(method: str, path: str, operation: Document, schemas: Document) -> str:
    title = operation.get("summary") or f"{method.upper()} {path}"
    parts = [f"### {cell(title)}", "", f"`{method.upper()} {path}`", ""]
    if operation.get("description"):
        parts += [paragraphs(operation["description"]), ""]
    if not operation.get("security"):
        parts += ["No API token.", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        parts += ["| Parameter | In | Type | Description |", "| --- | --- | --- | --- |"]
        for parameter in parameters:
            name = f"`{parameter['name']}`" + ("" if parameter.get("required") else " (optional)")
            kind = _type(parameter.get("schema", {}), schemas)
            text = parameter.get("description") or parameter.get("schema", {}).get("description")
            parts.append(f"| {name} | {parameter['in']} | {kind} | {cell(text or '')} |")
        parts.append("")
    body = operation.get("requestBody")
    if body:
        for media, content in body.get("content", {}).items():
            kind = _type(content.get("schema", {}), schemas)
            parts += [f"Body ({media}): {kind}.", ""]
    responses = operation.get("responses", {})
    if responses:
        parts += ["| Status | Meaning | Body |", "| --- | --- | --- |"]
        for status, response in responses.items():
            kinds = [
                f"{_type(content.get('schema', {}), schemas)} ({media})"
                for media, content in response.get("content", {}).items()
            ]
            meaning = cell(response.get("description", ""))
            parts.append(f"| {status} | {meaning} | {'; '.join(kinds) or '(none)'} |")
        parts.append("")
    return "\n".join(parts)


def _schema(name: str, schema: Document, schemas: Document) -> str:
    parts = [f"### {name} {{#{_anchor(name)}}}", ""]
    if schema.get("description"):
        parts += [paragraphs(schema["description"]), ""]
    properties = schema.get("properties")
    if not properties:
        parts += [f"{_type(schema, schemas, top=True)}.", ""]
        return "\n".join(parts)
    required = set(schema.get("required", ()))
    parts += ["| Field | Type | Description |", "| --- | --- | --- |"]
    for field, spec in properties.items():
        label = f"`{field}`" + ("" if field in required else " (optional)")
        text = spec.get("description") or ""
        if "default" in spec and spec["default"] is not None:
            text = f"{text} Default: `{_json(spec['default'])}`.".strip()
        parts.append(f"| {label} | {_type(spec, schemas)} | {cell(text)} |")
    parts.append("")
    return "\n".join(parts)


def _type(schema: Document, schemas: Document, *, top: bool = False) -> str:
    """A schema's type in words, named schemas as links to their section."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(_REF)
        return f"[`{name}`](#{_anchor(name)})"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{_json(value)}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{_json(schema['const'])}`"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            kinds = dict.fromkeys(_type(part, schemas) for part in schema[key])
            return " or ".join(kinds)
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"array of {_type(items, schemas)}" if items else "array"
    if kind == "object" or (top and not kind):
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra:
            return f"object of {_type(extra, schemas)}"
        return "object"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(kind, str):
        return f"{kind} ({schema['format']})" if "format" in schema else kind
    return "any JSON value"


def _anchor(name: str) -> str:
    return "schema-" + name.lower().replace("_", "-")


def _json(value: Any) -> str:
    return json.dumps(value)
