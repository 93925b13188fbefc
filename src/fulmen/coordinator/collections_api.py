"""The collections API jobs call (issue 19), as Lightning has it under ``/collections``.

=======  ======================  ==========================================================
GET      /collections/<name>     the items, streamed: ``{"items": [...], "cursor": ...}``;
                                 query ``key`` (a ``*`` pattern), ``cursor``, ``limit``
                                 (default 1000), ``created_after``, ``created_before``,
                                 ``updated_after``, ``updated_before`` (ISO 8601)
GET      /collections/<n>/<key>  the item ``{"key", "value", "created", "updated"}``, or 204
PUT      /collections/<n>/<key>  ``{"value": "<text>"}``: ``{"upserted": 1, "error": null}``
POST     /collections/<name>     ``{"items": [{"key", "value"}, ...]}``: one statement for
                                 all of them, ``{"upserted": n, "error": null}``
DELETE   /collections/<n>/<key>  ``{"key", "deleted": 1|0, "error": null|"Item Not Found"}``
DELETE   /collections/<name>     query ``key`` (a pattern; none: every item):
                                 ``{"key", "deleted": n, "error": null}``
=======  ======================  ==========================================================

*Who.* ``Authorization: Bearer <token>``: a run's token (the JWT a worker is given for the
run, spec §3, which a job hands to its adaptor) grants every call on its run's project's
collections while its run is not finished and the token has not expired (the run's timeout
and grace): a job that kept the token cannot use it after its run; or
an API token, whose role in the collection's project says: viewers read, editors and
stronger write. A collection of a project the caller may not see is answered as one that
does not exist (404), so names cannot be probed.

*Answers* keep Lightning's shapes and statuses; a refusal is ``{"error": "<Lightning's
word>", "code", "message"}`` (Fulmen's stable code and a sentence saying what to change):
401 without a valid token, 404 for an unknown or hidden collection, 403 for a role too weak,
400 for a query parameter Lightning does not know or one that does not parse and for a body
that is not what the route takes, 422 for a value or key over a limit
(``FULMEN_COLLECTION_MAX_VALUE_BYTES``, ``FULMEN_COLLECTION_MAX_ITEMS``) or otherwise unusable,
413 for a body over the request limit. A ``PUT`` whose value is not text is answered as
Lightning does: 200 with ``{"upserted": 0, "error": "Format error"}``.

*Memory.* The stream is read a page at a time from the store (keyset pages, each in its
own read transaction) and written as it is read: a get of 100,000 items holds one page.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import fastapi
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security.utils import get_authorization_scheme_param

from fulmen.coordinator import audit, principals
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api import auth
from fulmen.coordinator.api.collections import find_collection
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.moments import moment
from fulmen.errors import AccessError, FulmenError, InputError, NotFoundError, TokenError
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import (
    CollectionInfo,
    CollectionItem,
    CollectionLimits,
    ItemFilter,
    Store,
    Target,
)
from fulmen.store.paging import decode_cursor, encode_cursor

__all__ = ["DEFAULT_LIMIT", "PAGE", "Bearer", "item_document", "limits_of", "router"]

log = logging.getLogger(__name__)

#: Items in an answer when the query names no ``limit`` (Lightning's ``default_stream_limit``).
DEFAULT_LIMIT: Final = 1000
#: Items read from the store at a time while streaming (Lightning reads 500): what the
#: coordinator holds of a stream, with values of up to the value limit each.
PAGE: Final = 200
#: Items written to the socket at a time.
_CHUNK: Final = 50
_QUERY: Final = frozenset(
    {"key", "cursor", "limit", "created_after", "created_before", "updated_after"}
    | {"updated_before"}
)
#: Lightning's words for each status (its FallbackController's), kept as ``error``.
_WORDS: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

#: What the OpenAPI document says every route may answer besides its own.
_REFUSALS: Final[dict[int | str, dict[str, Any]]] = {
    400: {
        "description": (
            "A query parameter it does not take or cannot read; a body that is not the route's"
        )
    },
    401: {"description": "No token, or neither a valid run token nor a valid API token"},
    403: {"description": "An API token whose role is too weak (viewers read, editors write)"},
    404: {"description": "No such collection, or another project's"},
    413: {"description": "A body over MAX_DATACLIP_SIZE_MB"},
    422: {
        "description": (
            "A key or value that is not one, or over a limit (code: item_too_large, "
            "collection_full, duplicate_key, bad_key, bad_item)"
        )
    },
}
_ITEM: Final = {
    "key": "patient-1",
    "value": '{"id": 1}',
    "created": "2026-01-31T09:30:00.000000Z",
    "updated": "2026-01-31T09:30:00.000000Z",
}

router = APIRouter(prefix="/collections", tags=["collections"], responses=_REFUSALS)


class _BadRequest(InputError):
    """What Lightning answers 400: a query it does not take, a body it cannot read."""

    code = "bad_request"


@dataclass(frozen=True, slots=True)
class Bearer:
    """Who calls: a run (by its token, with its project), or what an API token acts as."""

    run_id: str | None
    run_project: str | None
    principal: Principal | None


def _json_example(example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body of JSON, by example (the route reads it itself, after the
    token: see the module docstring)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


def limits_of(c: Coordinator) -> CollectionLimits:
    """The coordinator's collection limits (its settings)."""
    return CollectionLimits(
        max_value_bytes=c.settings.collection_max_value_bytes,
        max_items=c.settings.collection_max_items,
    )


def item_document(item: CollectionItem) -> dict[str, str]:
    """An item as Lightning answers it."""
    return {
        "key": item.key,
        "value": item.value,
        "created": _stamp(item.inserted_at),
        "updated": _stamp(item.updated_at),
    }


@router.get(
    "/{name}",
    summary="Stream a collection's items",
    responses={
        200: {
            "description": (
                "Up to ``limit`` items in insertion order; ``cursor`` (pass it back for "
                "the next) when more follow, else null"
            ),
            "content": {"application/json": {"example": {"items": [_ITEM], "cursor": None}}},
        }
    },
)
async def stream(
    request: Request,
    name: str,
    key: Annotated[
        str | None, fastapi.Query(description="A key pattern: ``*`` stands for any characters")
    ] = None,
    cursor: Annotated[
        str | None, fastapi.Query(description="The ``cursor`` of the previous answer")
    ] = None,
    limit: Annotated[str | None, fastapi.Query(description="Items in the answer [1000]")] = None,
    created_after: Annotated[
        str | None, fastapi.Query(description="Inserted at or after (ISO 8601)")
    ] = None,
    created_before: Annotated[str | None, fastapi.Query(description="Inserted before")] = None,
    updated_after: Annotated[
        str | None, fastapi.Query(description="Last updated at or after")
    ] = None,
    updated_before: Annotated[str | None, fastapi.Query(description="Last updated before")] = None,
) -> Response:
    """The query is read as Lightning reads it (a parameter it does not know is 400), so the
    parameters above are declared as text for the OpenAPI document only."""
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.READ, name)
        where, most = _query(request.query_params)
    except FulmenError as error:
        return await _refusal(request, error)
    body = _streamed(c.store, collection.id, where, most)
    return StreamingResponse(body, media_type="application/json")


@router.get(
    "/{name}/{key:path}",
    summary="Get one item",
    responses={
        200: {"description": "The item", "content": {"application/json": {"example": _ITEM}}},
        204: {"description": "No item has this key"},
    },
)
async def get_item(request: Request, name: str, key: str) -> Response:
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.READ, name)
        item = await c.store.get_collection_item(collection.id, key)
    except FulmenError as error:
        return await _refusal(request, error)
    if item is None:
        return Response(status_code=204)
    return JSONResponse(item_document(item))


@router.put(
    "/{name}/{key:path}",
    summary="Put one item",
    openapi_extra=_json_example({"value": '{"id": 1}'}),
    responses={
        200: {
            "description": (
                "Stored; or, for a value that is not text, ``upserted`` 0 and ``error`` "
                '"Format error" (as Lightning answers)'
            ),
            "content": {"application/json": {"example": {"upserted": 1, "error": None}}},
        }
    },
)
async def put_item(request: Request, name: str, key: str) -> Response:
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.EDIT, name)
        body = await _body(request)
        if "value" not in body:
            raise _BadRequest('the body is {"value": "<text>"}', field="value")
        value = body["value"]
        if not isinstance(value, str):
            return JSONResponse(
                {
                    "upserted": 0,
                    "error": "Format error",
                    "code": "bad_value",
                    "message": "an item's value is text: a job's adaptor sends JSON as a string",
                }
            )
        count = await c.store.put_collection_items(collection.id, [(key, value)], limits_of(c))
    except FulmenError as error:
        return await _refusal(request, error)
    return JSONResponse({"upserted": count, "error": None})


@router.post(
    "/{name}",
    summary="Put many items in one request",
    openapi_extra=_json_example({"items": [{"key": "patient-1", "value": '{"id": 1}'}]}),
    responses={
        200: {
            "description": "All stored, in one statement (or, refused, none)",
            "content": {"application/json": {"example": {"upserted": 1, "error": None}}},
        }
    },
)
async def put_all(request: Request, name: str) -> Response:
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.EDIT, name)
        items = _items((await _body(request)).get("items"))
        count = await put_items(c, request, bearer, collection, items)
    except FulmenError as error:
        return await _refusal(request, error)
    return JSONResponse({"upserted": count, "error": None})


@router.delete(
    "/{name}/{key:path}",
    summary="Delete one item",
    responses={
        200: {
            "description": '``deleted`` 1, or 0 with ``error`` "Item Not Found"',
            "content": {
                "application/json": {"example": {"key": "patient-1", "deleted": 1, "error": None}}
            },
        }
    },
)
async def delete_item(request: Request, name: str, key: str) -> Response:
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.EDIT, name)
        deleted = await c.store.delete_collection_item(collection.id, key)
    except FulmenError as error:
        return await _refusal(request, error)
    if deleted:
        return JSONResponse({"key": key, "deleted": 1, "error": None})
    return JSONResponse({"key": key, "deleted": 0, "error": "Item Not Found"})


@router.delete(
    "/{name}",
    summary="Delete the items whose key matches a pattern",
    responses={
        200: {
            "description": "How many items went",
            "content": {
                "application/json": {"example": {"key": "patient-*", "deleted": 2, "error": None}}
            },
        }
    },
)
async def delete_all(
    request: Request,
    name: str,
    key: Annotated[
        str | None, fastapi.Query(description="A key pattern (``*``); none: every item")
    ] = None,
) -> Response:
    try:
        c, bearer = await _bearer(request)
        collection = await _collection(c.store, bearer, Permission.EDIT, name)
        pattern = request.query_params.get("key")
        deleted = await delete_items(c, request, bearer, collection, pattern)
    except FulmenError as error:
        return await _refusal(request, error)
    return JSONResponse({"key": pattern, "deleted": deleted, "error": None})


async def put_items(
    c: Coordinator,
    request: Request,
    bearer: Bearer,
    collection: CollectionInfo,
    items: list[tuple[str, str]],
) -> int:
    """Upsert ``items``; a person's bulk change (not a run's) is recorded in the audit trail."""
    if bearer.principal is None:
        return await c.store.put_collection_items(collection.id, items, limits_of(c))
    async with c.store.together():
        count = await c.store.put_collection_items(collection.id, items, limits_of(c))
        await _record(c.store, request, bearer.principal, "items_put", collection, count)
    return count


async def delete_items(
    c: Coordinator,
    request: Request,
    bearer: Bearer,
    collection: CollectionInfo,
    pattern: str | None,
) -> int:
    """Delete by pattern; recorded as :func:`put_items` records."""
    if bearer.principal is None:
        return await c.store.delete_collection_items(collection.id, pattern)
    async with c.store.together():
        count = await c.store.delete_collection_items(collection.id, pattern)
        await _record(
            c.store, request, bearer.principal, "items_deleted", collection, count, pattern
        )
    return count


async def _record(
    store: Store,
    request: Request,
    principal: Principal,
    verb: str,
    collection: CollectionInfo,
    count: int,
    pattern: str | None = None,
) -> None:
    detail: dict[str, Any] = {"count": count}
    if verb == "items_deleted":
        detail["key"] = pattern
    await audit.record(
        store,
        audit.actor(request, principal),
        f"collection.{verb}",
        Target("collection", collection.id, collection.name),
        project_id=collection.project_id,
        detail=detail,
    )


async def _bearer(request: Request) -> tuple[Coordinator, Bearer]:
    """The coordinator and who the request's bearer token says calls (401 otherwise)."""
    c: Coordinator = request.app.state.coordinator
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        raise _Unauthorized("a token is required: Authorization: Bearer <run or API token>")
    if auth.parse(token) is not None:
        stored = await auth.verify(c.store, token, what="collections request")
        principal = None if stored is None else await principals.of_token(c.store, stored)
        if principal is None:
            raise _Unauthorized("the API token is not valid")
        request.scope[principals.SCOPE_KEY] = principal  # for the audit trail's refusals
        return c, Bearer(None, None, principal)
    try:
        claims = c.run_tokens.verify_any(token, now=c.now())
        run = await c.store.peek_run(claims.id)
    except (TokenError, NotFoundError) as error:
        log.warning("collections request with a run token refused: %s", error)
        raise _Unauthorized("the run token is not valid (or its run is gone)") from None
    if run.state in FINAL_RUN_STATES:
        # The token outlives its run by the run's timeout: a job that kept it (ws-worker
        # hands it to the job) must not keep the project's collections after its run.
        log.warning("collections request with the token of finished run %s refused", run.id)
        raise _Unauthorized(f"the run token is not valid: run {run.id} has finished")
    return c, Bearer(run.id, run.project_id, None)


async def _collection(
    store: Store, bearer: Bearer, permission: Permission, name: str
) -> CollectionInfo:
    """The collection named ``name`` if the caller may do ``permission`` to it: an API
    token as the management API asks (api.collections.find_collection), a run only in its
    own project, another's answered exactly as an unknown name.

    Raises:
        NotFoundError: no such collection (or, for a run, another project's).
        AccessError: an API token's refusals (access.require).
    """
    if bearer.principal is not None:
        return await find_collection(store, bearer.principal, permission, name)
    try:
        found = await store.get_collection(name)
    except NotFoundError:
        raise _unknown(name) from None
    if found.project_id != bearer.run_project:
        raise _unknown(name)
    return found


def _query(params: Mapping[str, str]) -> tuple[ItemFilter, int]:
    """The stream's filter and limit from its query (400 for anything Lightning refuses)."""
    unknown = sorted(set(params) - _QUERY)
    if unknown:
        raise _BadRequest(
            f"unknown query parameter {unknown[0]!r}; this route takes {', '.join(sorted(_QUERY))}",
            field=unknown[0],
        )
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise _BadRequest("limit is a whole number of items", field="limit") from None
    if limit < 1:
        raise _BadRequest("limit is at least 1", field="limit")
    after = 0
    if params.get("cursor"):
        try:
            after = int(decode_cursor(params["cursor"], int)[0])
        except InputError:
            raise _BadRequest(
                "cursor is not one this API gave: pass back the cursor of the last answer",
                field="cursor",
            ) from None
    times: dict[str, datetime | None] = {}
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        try:
            times[name] = moment(params.get(name, ""), name)
        except InputError as error:
            raise _BadRequest(error.message, field=name) from None
    return ItemFilter(pattern=params.get("key"), after_id=after, **times), limit


async def _streamed(
    store: Store, collection_id: str, where: ItemFilter, limit: int
) -> AsyncIterator[bytes]:
    """``{"items": [...], "cursor": ...}``, written as the store's pages are read: ``cursor``
    is set when more items follow the ``limit`` given (the id of the last one sent)."""
    yield b'{"items": ['
    sent = 0
    last: CollectionItem | None = None
    more = False
    chunk: list[bytes] = []
    items = store.stream_collection_items(collection_id, where, page=min(limit + 1, PAGE))
    async for item in items:
        if sent == limit:
            more = True
            break
        chunk.append(orjson.dumps(item_document(item)))
        sent += 1
        last = item
        if len(chunk) == _CHUNK:
            yield (b"," if sent > _CHUNK else b"") + b",".join(chunk)
            chunk = []
    await items.aclose()  # ends the store's reading now, not when collected
    if chunk:
        yield (b"," if sent > len(chunk) else b"") + b",".join(chunk)
    cursor = encode_cursor(last.id) if more and last is not None else None
    yield b'], "cursor": ' + orjson.dumps(cursor) + b"}"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body is a JSON object")
    return body


def _items(given: object) -> list[tuple[str, str]]:
    if not isinstance(given, list):
        raise _BadRequest('the body is {"items": [{"key": ..., "value": ...}, ...]}', field="items")
    items: list[tuple[str, str]] = []
    for index, item in enumerate(given):
        if not isinstance(item, dict) or "key" not in item or "value" not in item:
            raise InputError(
                'each item is {"key": "<text>", "value": "<text>"}',
                code="bad_item",
                field=f"items[{index}]",
            )
        key, value = item["key"], item["value"]
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError(
                "an item's key and value are text (a job's adaptor sends JSON as a string)",
                code="bad_item",
                field=f"items[{index}]",
            )
        items.append((key, value))
    return items


class _Unauthorized(AccessError):
    code = "unauthorized"


def _unknown(name: str) -> NotFoundError:
    return NotFoundError(f"collection {name} does not exist in this run's project", field="name")


async def _refusal(request: Request, error: FulmenError) -> Response:
    from fulmen.coordinator.api import status_of  # the API's one mapping of refusals

    if isinstance(error, _Unauthorized):
        status = 401
    elif isinstance(error, _BadRequest):
        status = 400
    else:
        status = status_of(error)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error)
    if status == 403 and isinstance(error, AccessError):
        await audit.refused(request, error)
    body: dict[str, Any] = {"error": _WORDS.get(status, "Error"), **error.to_wire()}
    field = getattr(error, "field", None)
    if field:
        body["field"] = field
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, headers=headers)


def _stamp(moment_: datetime) -> str:
    """A time as Lightning's JSON has it: ISO 8601, microseconds, ``Z``."""
    return moment_.isoformat(timespec="microseconds").replace("+00:00", "Z")
