"""The REST API under ``/api``: bearer tokens, JSON documents, cursor pagination.

Every route needs an API token (auth.py) and asks, before it reads or changes anything,
whether the role the token acts with allows it (access.py, through guard.py: a thing named by
its own id is checked against its project); listings hold only the caller's projects.
Listings take ``cursor`` and ``limit`` and answer ``{"items": [...], "next_cursor": ...}``.
Errors are ``{"error": {"code", "message", "field"}}`` with the status their kind calls for:
unknown ids 404 (and ids in projects the caller is not a member of: access.py), a role too
weak 403 (recorded in the audit trail: coordinator/audit.py, read back at ``/api/audit``:
api/audit_trail.py), conflicts (duplicate id, stale version, a run that cannot be cancelled
now) 409, unusable input 422 (with the path of the value at fault in ``field`` when there is
one), an npm registry or Python package index that could not say which versions a package
has 502, a store failure 500, an
``Idempotency-Key`` header that is not one 400 (fulmen.coordinator.idempotency). The
OpenAPI document is at ``/openapi.json`` (FastAPI's), with the docs at ``/docs``.

A request that does not fit its model is 422 in FastAPI's shape (``{"detail": [{"type",
"loc", "msg", "input"}]}``, as the OpenAPI document says), plus ``expected``: the fields
of the body's object the first error is in, with their types (shapes.py). ``input`` is a
short excerpt of what was sent, never the whole of it (FastAPI's own handler echoes it: for a
missing field, the whole object around it), and at most :data:`MAX_ERRORS_SHOWN` errors are
listed (``omitted`` counts the rest): a bad request is never answered with more than a few
kilobytes.
"""

from __future__ import annotations

import logging
import reprlib
from typing import Any, Final

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from fulmen.coordinator import audit
from fulmen.coordinator.api import (
    adaptors,
    alerts,
    audit_trail,
    catalog,
    collections,
    deployments,
    instance,
    members,
    runs,
    tokens,
    users,
    webhook_auth,
    work_orders,
)
from fulmen.coordinator.api.auth import TokenFirst, authorized
from fulmen.coordinator.api.schemas.common import DetailDoc, ErrorDoc
from fulmen.coordinator.api.shapes import expected
from fulmen.coordinator.idempotency import KeyRefused
from fulmen.errors import (
    AccessError,
    ConfigError,
    ConflictError,
    ContractError,
    FulmenError,
    InputError,
    NotFoundError,
    PlanError,
    RegistryError,
    SignInError,
    StoreError,
    TransitionError,
)

__all__ = ["MAX_ERRORS_SHOWN", "excerpt", "install", "router", "status_of"]

log = logging.getLogger(__name__)

MAX_ERRORS_SHOWN: Final = 20
#: Longest excerpt of bad input, and of a message, echoed in a 422.
_EXCERPT_CHARS: Final = 80
_MESSAGE_CHARS: Final = 200

#: The answers any route may give besides its own: documented once for all of them.
_COMMON_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": DetailDoc, "description": "A body that is not JSON"},
    401: {"model": DetailDoc, "description": "No token, or not a valid one"},
    403: {"model": ErrorDoc, "description": "A role too weak for this (the role it takes)"},
    404: {"model": ErrorDoc, "description": "An id that names nothing"},
    409: {"model": ErrorDoc, "description": "A conflict: a duplicate id, a stale version"},
    413: {"model": ErrorDoc, "description": "A body over the route's limit"},
}

router = APIRouter(prefix="/api", dependencies=[Depends(authorized)], responses=_COMMON_ANSWERS)
router.include_router(catalog.router)
router.include_router(deployments.router)
router.include_router(adaptors.router)
router.include_router(runs.router)
router.include_router(work_orders.router)
router.include_router(webhook_auth.router)
router.include_router(alerts.router)
router.include_router(instance.router)
router.include_router(members.router)
router.include_router(tokens.router)
router.include_router(audit_trail.router)
router.include_router(users.router)
router.include_router(collections.router)


def status_of(error: FulmenError) -> int:
    """The HTTP status a refusal is answered with (the dashboard's forms answer the same)."""
    if isinstance(error, KeyRefused):
        return 400
    if isinstance(error, SignInError):
        return 429 if error.code == "rate_limited" else 401
    if isinstance(error, AccessError):
        return 404 if error.code == "not_a_member" else 403
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError | TransitionError):
        return 409
    if isinstance(error, InputError | ContractError | PlanError):
        return 422
    if isinstance(error, ConfigError):
        return 503
    if isinstance(error, RegistryError):
        return 502
    return 500


async def _fulmen_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FulmenError)
    status = status_of(error)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error)
    if status == 403 and isinstance(error, AccessError):
        await audit.refused(request, error)  # a role too weak, wherever it was refused
    body: dict[str, object] = {"code": error.code, "message": error.message}
    field = getattr(error, "field", None)
    if isinstance(error, StoreError | ContractError | InputError) and field:
        body["field"] = field
    return JSONResponse({"error": body}, status)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    shown = [
        {
            "type": str(item.get("type", "")),
            "loc": [part if isinstance(part, int) else str(part) for part in item.get("loc", ())],
            "msg": _cut(str(item.get("msg", "")).removeprefix("Value error, "), _MESSAGE_CHARS),
            "input": excerpt(item.get("input")),
        }
        for item in errors[:MAX_ERRORS_SHOWN]
    ]
    body: dict[str, Any] = {"detail": shown}
    if len(errors) > MAX_ERRORS_SHOWN:
        body["omitted"] = len(errors) - MAX_ERRORS_SHOWN
    route = request.scope.get("route")
    if shown and isinstance(route, APIRoute):
        shape = expected(request.app.openapi(), request.method, route.path, shown[0]["loc"])
        if shape is not None:
            body["expected"] = shape
    return JSONResponse(body, 422)


def excerpt(value: object) -> str:
    """At most a line of ``value``, for an answer that must not echo all of it."""
    return _cut(_repr.repr(value), _EXCERPT_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_repr = reprlib.Repr()
_repr.maxlevel = 2
_repr.maxstring = _repr.maxother = _EXCERPT_CHARS
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = 4


def install(app: FastAPI) -> None:
    """Check API tokens before bodies are read (auth.py); answer Fulmen's errors in the
    API's shape, and invalid requests with excerpts, wherever a route raises them."""
    app.add_middleware(TokenFirst)
    app.add_exception_handler(FulmenError, _fulmen_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
