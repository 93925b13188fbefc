"""The REST API under ``/api``: bearer tokens, JSON documents, cursor pagination.

Every route needs an API token (auth.py). Listings take ``cursor`` and ``limit`` and answer
``{"items": [...], "next_cursor": ...}``. Errors are ``{"error": {"code", "message",
"field"}}`` with the status their kind calls for: unknown ids 404, conflicts (duplicate id,
stale version, a run that cannot be cancelled now) 409, unusable input 422, a store failure
500. The OpenAPI document is at ``/openapi.json`` (FastAPI's), with the docs at ``/docs``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from fulmen.coordinator.api import catalog, runs, webhook_auth, work_orders
from fulmen.coordinator.api.auth import authorized
from fulmen.errors import (
    ConfigError,
    ConflictError,
    ContractError,
    FulmenError,
    InputError,
    NotFoundError,
    PlanError,
    StoreError,
    TransitionError,
)

__all__ = ["install", "router"]

log = logging.getLogger("fulmen.coordinator")

router = APIRouter(prefix="/api", dependencies=[Depends(authorized)])
router.include_router(catalog.router)
router.include_router(runs.router)
router.include_router(work_orders.router)
router.include_router(webhook_auth.router)


def status_of(error: FulmenError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError | TransitionError):
        return 409
    if isinstance(error, InputError | ContractError | PlanError):
        return 422
    if isinstance(error, ConfigError):
        return 503
    return 500


async def _fulmen_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FulmenError)
    status = status_of(error)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error)
    body: dict[str, object] = {"code": error.code, "message": error.message}
    field = getattr(error, "field", None)
    if isinstance(error, StoreError | ContractError) and field:
        body["field"] = field
    return JSONResponse({"error": body}, status)


def install(app: FastAPI) -> None:
    """Answer Fulmen's errors in the API's shape, wherever a route raises them."""
    app.add_exception_handler(FulmenError, _fulmen_error)
