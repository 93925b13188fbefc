"""``GET /ui/events``: the pages' server-sent event stream, one ``change`` event per notice of
the coordinator's change feed (coordinator/changes.py) that concerns the page
(``?run=<id>``: that run only; else every run).

An event carries no data a page shows: the page re-reads its fragments, as it would on a
timer, and those check the reader's role; a stream of one run's changes is for those who may
read the run (403 or 404 otherwise, as its page would answer). The first event, ``hello``,
tells the page how often to re-read anyway (the setting ``FULMEN_DASHBOARD_LIVE_POLL_SECONDS``),
in case a notice was missed.

A stream ends after :data:`LIFETIME_S` (the browser's ``EventSource`` reconnects after
``retry``, and the session is checked again), and at once when the coordinator stops
(hub.drain closes the feed), so uvicorn's graceful shutdown is never held up by an open tab.
A comment every :data:`HEARTBEAT_S` keeps proxies from closing a quiet stream and shows
the server when the tab has gone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fulmen.coordinator.access import Permission
from fulmen.coordinator.changes import Changes
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.session import signed_in
from fulmen.coordinator.guard import require_on
from fulmen.errors import NotFoundError

__all__ = ["HEARTBEAT_S", "LIFETIME_S", "RETRY_MS", "router"]

router = APIRouter(route_class=Guarded)

#: A comment this often while nothing changes.
HEARTBEAT_S: Final = 15.0
#: Each stream ends after this long; the browser opens the next one.
LIFETIME_S: Final = 300.0
#: How long the browser waits before reconnecting.
RETRY_MS: Final = 2000


@router.get("/events")
async def events(
    request: Request, run: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    """The event stream; 401 (not the sign-in page: ``EventSource`` cannot follow it) when
    not signed in."""
    me = await signed_in(request)
    if me is None:
        return JSONResponse({"error": {"code": "unauthorized", "message": "sign in"}}, 401)
    c: Coordinator = request.app.state.coordinator
    if run is not None:
        try:
            await require_on(c.store, me, Permission.READ, "run", run)
        except NotFoundError as missing:
            body = {"error": {"code": missing.code, "message": missing.message}}
            return JSONResponse(body, 404)
    poll_ms = int(c.settings.dashboard_live_poll * 1000)
    return StreamingResponse(
        stream(c.hub.changes, run, poll_ms=poll_ms),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def stream(
    changes: Changes,
    run_id: str | None,
    *,
    poll_ms: int,
    lifetime: float = LIFETIME_S,
    heartbeat: float = HEARTBEAT_S,
) -> AsyncIterator[str]:
    """The stream's text: ``hello``, then a ``change`` per notice or a comment per quiet
    ``heartbeat``, until ``lifetime`` has passed or the feed closes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    async with changes.subscribe(run_id) as subscription:
        yield f"retry: {RETRY_MS}\nevent: hello\ndata: {json.dumps({'poll': poll_ms})}\n\n"
        while (left := deadline - loop.time()) > 0:
            if await subscription.wait(min(heartbeat, left)):
                yield "event: change\ndata: {}\n\n"
            elif subscription.closed:
                return
            else:
                yield ": still here\n\n"
