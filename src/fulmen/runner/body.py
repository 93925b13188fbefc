"""Request bodies as the runner accepts them: size-capped, then decoded by content type.

A create request may be JSON, urlencoded or multipart, as Escrin's runner took it (spec
runner.md §1.2 and §3.3). Unlike Escrin, the media type is matched without its parameters
(``application/json; charset=utf-8`` is JSON), a missing header still means JSON, and an
unsupported type is ``415`` (Escrin said ``400``). Each failure has its own message instead of
Escrin's one generic "could not be parsed as form data". In multipart, ``script`` and
``config`` may be files; their bytes must be UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Final

from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

from fulmen.errors import RunnerError
from fulmen.runner.spec import MAX_SCRIPT_BYTES, Upload

__all__ = ["MAX_CREATE_BYTES", "create_fields", "media_type", "read_body"]

MAX_CREATE_BYTES: Final = MAX_SCRIPT_BYTES + 256 * 1024
_FORMS: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(request: Request) -> str:
    """The content type without parameters, lower case; JSON when the header is missing."""
    header = request.headers.get("content-type")
    if header is None:
        return "application/json"
    value, _ = parse_options_header(header)
    return value.decode("latin-1").strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ``too_large`` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def create_fields(request: Request) -> dict[str, object]:
    """The fields of a create request (last value wins when a form repeats one).

    Raises:
        RunnerError: ``unsupported_media_type``, ``too_large``, ``bad_request``.
    """
    kind = media_type(request)
    if kind != "application/json" and kind not in _FORMS:
        raise RunnerError(f"unsupported content type: {kind}", code="unsupported_media_type")
    body = await read_body(request, MAX_CREATE_BYTES)
    if kind == "application/json":
        return json_object(body)
    return await _form(request, body, multipart=kind == "multipart/form-data")


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; RunnerError ``bad_request`` otherwise."""
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise RunnerError(
            f"the request body is not valid JSON: {exc}", code="bad_request"
        ) from None
    if not isinstance(value, dict):
        raise RunnerError("the request body must be a JSON object", code="bad_request")
    return value


async def _form(request: Request, body: bytes, *, multipart: bool) -> dict[str, object]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        # The end, as Request.stream() marks it: before 1.10, Starlette's form parsers keep the
        # last field only once they see it.
        yield b""

    try:
        if multipart:
            parser = MultiPartParser(request.headers, stream(), max_part_size=MAX_CREATE_BYTES)
            form = await parser.parse()
        else:
            form = await FormParser(request.headers, stream()).parse()
    except (MultiPartException, ValueError) as exc:
        raise RunnerError(f"the form body could not be parsed: {exc}", code="bad_request") from None
    fields: dict[str, object] = {}
    try:
        for name, value in form.multi_items():
            fields[name] = await _upload(name, value) if isinstance(value, UploadFile) else value
    finally:
        await form.close()
    return fields


async def _upload(name: str, file: UploadFile) -> Upload:
    data = await file.read()
    try:
        return Upload(data.decode("utf-8"), file.filename or name)
    except UnicodeDecodeError:
        raise RunnerError(f"the uploaded {name} is not UTF-8 text", code="bad_request") from None


def _too_large(limit: int) -> RunnerError:
    return RunnerError(f"the request body is over {limit} bytes", code="too_large")
