"""Request bodies: every route takes them up to a limit of its part of the coordinator, and
the limit holds before anything else happens to the request.

==============  ===========================  ===============================================
part            paths                        largest body
==============  ===========================  ===============================================
webhooks        ``/i/…``                     ``MAX_DATACLIP_SIZE_MB`` (10 MB): the body is
                                             the run's input dataclip
REST API        ``/api/…``                   :data:`API_BYTES` (1 MiB), and the dataclip
                                             limit for a manual run's input
                                             (``POST /api/workflows/{id}/runs``)
dashboard       ``/ui/…``                    :data:`DASHBOARD_BYTES` (64 KiB): its forms
                                             hold a token or an id; but the workflow
                                             editor's (``/ui/…/workflows/new``,
                                             ``/ui/workflows/{id}/edit``) take the API's
                                             limit, as they hold what the API's save does
collections     ``/collections/…``           ``MAX_DATACLIP_SIZE_MB``: a job's bulk upsert
                                             (10,000 items in one request)
anything else   health, metrics, OpenAPI     :data:`DASHBOARD_BYTES`: they take no body
==============  ===========================  ===============================================

:class:`BodyLimit` wraps the whole app, so the limit holds before authentication, before
routing and before any parsing, whichever part reads the body and however (FastAPI's
models, a form, a stream). A ``Content-Length`` over the limit is answered 413 before the
app sees the request. A body without one (chunked) is counted as it arrives: the read that
passes the limit raises :class:`BodyTooLarge` (an ``HTTPException``, so that FastAPI's
body parsing lets it through) and is answered 413, having taken no more than the limit plus
one read. Either 413 says ``Connection: close``, so the server closes the connection instead
of reading the rest of the body to reuse it; so does any answer given before the body was
read to its end (a 401, a 404, a route that takes no body): the limit is what the server
reads of a request, not only what the app keeps. (What a route may keep before it knows who
is asking is less still: the API checks its token before the body is read, auth.py; a
webhook looks up its trigger and checks its auth methods first, webhooks.py.)

Why not Starlette's ``RequestBodyLimitMiddleware`` (or FastAPI's ``max_body_size``): given
a ``Content-Length`` over the limit, it still runs the app until it reads the body or
answers, so a webhook's trigger lookup and authentication run first; its 413 is plain text
and keeps the connection open. The ASGI server already reads in bounded chunks and stops
reading from a client while a chunk waits (uvicorn's flow control), so what a request costs
in memory is what the app keeps of it: at most the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "API_BYTES",
    "DASHBOARD_BYTES",
    "BodyLimit",
    "BodyTooLarge",
    "install",
    "limits",
]

API_BYTES: Final = 1024 * 1024
DASHBOARD_BYTES: Final = 64 * 1024
_MANUAL_RUN: Final = re.compile(r"/api/workflows/[^/]+/runs/?")
_WORKFLOW_FORM: Final = re.compile(r"/ui/(?:projects/[^/]+/workflows/new|workflows/[^/]+/edit)/?")
_CLOSE: Final = (b"connection", b"close")


class BodyTooLarge(HTTPException):
    """A request body over its route's limit: 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes", {"connection": "close"})
        self.limit = limit


def limits(dataclip_bytes: int) -> Callable[[str], int]:
    """The limit of each path, as the table above says, given the largest dataclip."""

    def limit_of(path: str) -> int:
        if path.startswith(("/i/", "/collections/")):
            return dataclip_bytes
        if path.startswith("/api/"):
            return dataclip_bytes if _MANUAL_RUN.fullmatch(path) else API_BYTES
        return API_BYTES if _WORKFLOW_FORM.fullmatch(path) else DASHBOARD_BYTES

    return limit_of


class BodyLimit:
    """ASGI middleware: see the module docstring. ``limit_of(path)`` is the largest body, in
    bytes, a request to ``path`` may send."""

    def __init__(self, app: ASGIApp, limit_of: Callable[[str], int]) -> None:
        self.app = app
        self.limit_of = limit_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await too_large(BodyTooLarge(limit))(scope, receive, send)
            return
        received = 0
        started = False
        unread = _has_body(scope)

        async def counted() -> Message:
            nonlocal received, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                unread = unread and message.get("more_body", False)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                if unread and not any(name.lower() == b"connection" for name, _ in headers):
                    message = {**message, "headers": [*headers, _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as error:
            # Routes answer it through the app's handler; this is for what reads the body
            # outside one.
            if started:
                raise
            await too_large(error)(scope, receive, send)


def too_large(error: BodyTooLarge) -> Response:
    return JSONResponse(
        {"error": {"code": "too_large", "message": error.detail}}, 413, headers=error.headers
    )


async def _too_large(request: Request, error: Exception) -> Response:
    assert isinstance(error, BodyTooLarge)
    return too_large(error)


def install(app: FastAPI, dataclip_bytes: int) -> None:
    """Limit every request body of ``app`` (the table above)."""
    app.add_middleware(BodyLimit, limit_of=limits(dataclip_bytes))
    app.add_exception_handler(BodyTooLarge, _too_large)


def _has_body(scope: Scope) -> bool:
    """Whether the request says a body follows (HTTP/1.1: a length above 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
