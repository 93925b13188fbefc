"""Liveness, readiness and Prometheus metrics.

* ``GET /health/live``: the process answers (200). Restart it when this fails.
* ``GET /health/ready``: the store answers a query (200), else 503 with the reason. Send it
  no traffic while this fails.
* ``GET /metrics``: queue depth per queue, runs per state (both read from the store at
  scrape time), claim latency, connected workers, and counts of what this coordinator did.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from fulmen.coordinator.core import Coordinator
from fulmen.errors import FulmenError

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="Liveness")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", summary="Readiness: the store answers")
async def ready(request: Request) -> Response:
    c: Coordinator = request.app.state.coordinator
    try:
        await c.store.queue_depth()
    except FulmenError as error:
        log.warning("not ready: %s", error)
        return JSONResponse({"status": "unavailable", "reason": error.message}, 503)
    return JSONResponse({"status": "ok", "workers": c.hub.connected})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    c: Coordinator = request.app.state.coordinator
    try:
        c.metrics.observe_store(
            await c.store.queue_depth(), await c.store.run_counts(), await c.store.run_endings()
        )
    except FulmenError as error:
        log.warning("metrics without store figures: %s", error)
    c.metrics.connected_workers.set(c.hub.connected)
    return Response(c.metrics.render(), media_type=CONTENT_TYPE_LATEST)
