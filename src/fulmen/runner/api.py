"""The runner's HTTP API (spec runner.md §3.3): Starlette routes over :class:`Runner`.

Each handler parses, calls the runner, and answers; no decision lives here beyond HTTP's own.
Every error is ``{"error": message, "code": code}`` with a JSON content type (Escrin era B's
shape plus the stable code), its status from :data:`STATUS`. A worker's config is never in
any answer; a fetch handler's exception is answered with a fixed message (its text could
quote the config) and goes only to the worker's log.

Every time in an answer is an ISO 8601 string in UTC (``2026-12-05T14:10:00.250000+00:00``),
as ``next_run`` always was: times.py is the one conversion from the unix seconds the registry
and the log book keep. ``logs?since=`` takes an ISO time, or unix seconds as before.

Every route but ``/healthz``, ``/openapi.json`` and the workers' own
``/workers/{id}/fetch/...`` needs ``Authorization: Bearer <token>`` (``auth.py``; none only
under ``--no-auth``). The 401 says which header to send and which file holds the token. The
OpenAPI document (``openapi.py``) describes every route here; a test holds the two together.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from fulmen.errors import FulmenError, RunnerError
from fulmen.runner import spec as worker_spec
from fulmen.runner import topics
from fulmen.runner.auth import ApiAuth
from fulmen.runner.body import create_fields, json_object, read_body
from fulmen.runner.openapi import document
from fulmen.runner.protocol import MAX_BODY_BYTES, b64decode, b64encode
from fulmen.runner.service import Runner
from fulmen.runner.times import iso, seconds

__all__ = ["LOG_TIMES", "RUN_TIMES", "STATUS", "routes"]

#: The times of a run record, written as ISO 8601.
RUN_TIMES: Final = ("scheduled_at", "started_at", "ended_at")
#: ...and of a log record (a skipped or missed cron fire's record says when it was due).
LOG_TIMES: Final = ("ts", "scheduled_at")

STATUS: Final = {
    "bad_request": 400, "invalid_cron": 400, "script_load_failed": 400, "bad_cron": 400,
    "unauthorized": 401, "forbidden": 403, "key_denied": 403,
    "not_found": 404, "no_handler": 404,
    "name_taken": 409, "too_many_workers": 409, "refused": 409,
    "too_large": 413, "unsupported_media_type": 415,
    "handler_raised": 500, "crashed": 502,
    "not_ready": 503, "sandbox_error": 503, "timeout": 504,
}  # fmt: skip
_MAX_EVENT_BYTES: Final = 256 * 1024
_HOP_BY_HOP: Final = frozenset(
    {"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade", "te"}
)

Handler = Callable[[Request], Awaitable[Response]]


def error_response(exc: FulmenError) -> JSONResponse:
    status = STATUS.get(exc.code, 500)
    headers = {"www-authenticate": 'Bearer realm="fulmen runner"'} if status == 401 else None
    return JSONResponse({"error": exc.message, "code": exc.code}, status, headers)


def _endpoint(handler: Handler, *, guarded: bool = True) -> Handler:
    """Check the API token, and turn Fulmen errors into their JSON answers."""

    async def endpoint(request: Request) -> Response:
        try:
            if guarded:
                _check_token(request)
            return await handler(request)
        except FulmenError as exc:
            return error_response(exc)

    return endpoint


def _check_token(request: Request) -> None:
    auth: ApiAuth = request.app.state.auth
    if not auth.allows(request.headers.get("authorization", "")):
        raise RunnerError(auth.refusal(), code="unauthorized")


def _runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


# -- workers -------------------------------------------------------------------------------


async def create(request: Request) -> Response:
    runner = _runner(request)
    fields = await create_fields(request)
    spec = worker_spec.parse(fields, now=runner.clock.now())
    return JSONResponse(await runner.create(spec), status_code=201)


async def list_workers(request: Request) -> Response:
    runner = _runner(request)
    return JSONResponse([runner.summary(w) for w in runner.workers()])


async def describe(request: Request) -> Response:
    runner = _runner(request)
    process = runner.get(request.path_params["ref"])
    runs = await runner.runs(process.record.id, 100)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.outcome] = counts.get(run.outcome, 0) + 1
    return JSONResponse({**runner.summary(process), "recent_runs": counts})


async def delete(request: Request) -> Response:
    purge = request.query_params.get("purge_key", "") in ("1", "true", "yes")
    await _runner(request).delete(request.path_params["ref"], purge_key=purge)
    return Response(status_code=204)


async def run_now(request: Request) -> Response:
    run_id = await _runner(request).triggers.run_now(request.path_params["ref"])
    return JSONResponse({"run_id": run_id}, status_code=202)


async def restart(request: Request) -> Response:
    await _runner(request).restart(request.path_params["ref"])
    return JSONResponse({}, status_code=202)


async def runs(request: Request) -> Response:
    limit = _int(request.query_params.get("limit"), 50)
    records = await _runner(request).runs(request.path_params["ref"], limit)
    return JSONResponse([_with_iso(r.__dict__, RUN_TIMES) for r in records])


async def logs(request: Request) -> Response:
    runner = _runner(request)
    process = runner.get(request.path_params["ref"])
    since = request.query_params.get("since")
    since_ts = seconds(since) if since else None
    limit = _int(request.query_params.get("limit"), 200)
    records = runner.logbook.read(process.record.id, since_ts, limit)
    return JSONResponse([_with_iso(r, LOG_TIMES) for r in records])


def _with_iso(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {**record, **{key: iso(record.get(key)) for key in keys if key in record}}


# -- triggers ------------------------------------------------------------------------------


async def fetch(request: Request) -> Response:
    runner = _runner(request)
    body = await read_body(request, MAX_BODY_BYTES)
    message = {
        "method": request.method,
        "url": str(request.url),
        "path": "/" + request.path_params.get("rest", ""),
        "query": _multi(request.query_params.multi_items()),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": b64encode(body),
    }
    try:
        reply = await runner.triggers.fetch(request.path_params["ref"], message)
    except RunnerError as exc:
        if exc.code == "handler_raised":  # its text may quote the config: logs only
            return JSONResponse({"error": "worker handler raised", "code": exc.code}, 500)
        raise
    headers = {k: v for k, v in reply.get("headers", {}).items() if k.lower() not in _HOP_BY_HOP}
    return Response(b64decode(reply.get("body", "")), int(reply.get("status", 200)), headers)


async def publish(request: Request) -> Response:
    topic = request.path_params["topic"]
    if not topics.is_topic(topic):
        raise RunnerError("topic must be [a-z0-9_.-]+", code="bad_request")
    body = await read_body(request, _MAX_EVENT_BYTES)
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise RunnerError(f"the event body is not valid JSON: {exc}", code="bad_request") from None
    event_id, delivered = await _runner(request).triggers.publish(topic, payload)
    return JSONResponse({"event_id": event_id, "delivered_to": delivered}, status_code=202)


# -- identities ----------------------------------------------------------------------------


async def create_identity(request: Request) -> Response:
    fields = await _json_body(request)
    made = await _runner(request).identities.create(fields.get("name"), fields.get("policy"))
    return JSONResponse(made, status_code=201)


async def get_identity(request: Request) -> Response:
    return JSONResponse(await _runner(request).identities.get(request.path_params["name"]))


async def put_identity(request: Request) -> Response:
    fields = await _json_body(request)
    token = request.headers.get("x-identity-token") or fields.get("admin_token")
    identities = _runner(request).identities
    updated = await identities.update(
        request.path_params["name"], fields.get("policy"), token if isinstance(token, str) else None
    )
    return JSONResponse(updated)


async def healthz(request: Request) -> Response:
    runner = _runner(request)
    return JSONResponse(
        {"ok": True, "workers": len(runner.workers()), "isolation": runner.isolation}
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(document())


async def _json_body(request: Request) -> dict[str, Any]:
    return json_object(await read_body(request, 256 * 1024))


def _multi(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for key, value in items:
        query.setdefault(key, []).append(value)
    return query


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) <= 1000:
        raise RunnerError("limit must be 1..1000", code="bad_request")
    return int(value)


_ANY: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes() -> list[BaseRoute]:
    """Every route of the API."""
    e = _endpoint
    return [
        Route("/", e(create), methods=["POST"]),
        Route("/workers", e(create), methods=["POST"]),
        Route("/workers", e(list_workers), methods=["GET"]),
        Route("/workers/{ref}", e(describe), methods=["GET"]),
        Route("/workers/{ref}", e(delete), methods=["DELETE"]),
        Route("/workers/{ref}/run", e(run_now), methods=["POST"]),
        Route("/workers/{ref}/restart", e(restart), methods=["POST"]),
        Route("/workers/{ref}/runs", e(runs), methods=["GET"]),
        Route("/workers/{ref}/logs", e(logs), methods=["GET"]),
        Route("/workers/{ref}/fetch", e(fetch, guarded=False), methods=_ANY),
        Route("/workers/{ref}/fetch/{rest:path}", e(fetch, guarded=False), methods=_ANY),
        Route("/events/{topic}", e(publish), methods=["POST"]),
        Route("/identities", e(create_identity), methods=["POST"]),
        Route("/identities/{name}", e(get_identity), methods=["GET"]),
        Route("/identities/{name}", e(put_identity), methods=["PUT"]),
        Route("/healthz", e(healthz, guarded=False), methods=["GET"]),
        Route("/openapi.json", e(openapi, guarded=False), methods=["GET"]),
    ]
