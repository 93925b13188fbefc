"""``POST /i/{trigger_id}``: a webhook request becomes a run.

A trigger that is unknown, not a webhook or disabled is 404. A trigger with auth methods
(issue 8) takes only requests that prove one of them (webhook_auth.py); any other is 401,
read no further and written nowhere, and the log says which trigger refused and why, never
what was sent.

The body is read up to ``MAX_DATACLIP_SIZE_MB`` (413 beyond it, without reading the rest:
bodies.py holds every route to its limit, a declared ``Content-Length`` over it before the
trigger is even looked up), must be JSON (an empty body counts as ``{}``; anything else that
does not parse is 415 when the request says it is not JSON, 400 otherwise), and is stored
as an ``http_request`` dataclip with the request's method, path, query and headers
(credentials-bearing headers left out), together with its work order and run, in one
transaction: on any error nothing is written. The answer names the work order and the run.

A trigger configured ``after_completion`` (§10.1) holds the answer until the run ends: its
status is the job's ``webhookResponse.status``, else 201; its body the job's
``webhookResponse.body``, else the final state when the run succeeded, or a short account of
the failure (the state is withheld then). If the run has not ended within
``WEBHOOK_RESPONSE_TIMEOUT_MS``, the answer is 202 with the ids: the run goes on. Such runs go
to the ``fast_lane`` queue.

With an ``Idempotency-Key`` header (fulmen.coordinator.idempotency), a key counts for this
trigger: the same request again within the retention window makes no run and is answered as
the first was, with ``Idempotent-Replayed: true`` (the same key with another body or query
string is 422). A trigger that answers after completion is answered from the run, the first
time and on a replay alike: a retry whose first request was cut waits for the same run (up to
the same timeout) and gets its outcome, or 202 with its ids while it goes on. The run's
final state is not copied into the key's record: it stays where retention can wipe it.
"""

from __future__ import annotations

import logging
from typing import Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fulmen.contract import JSON
from fulmen.coordinator import webhook_auth
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.idempotency import (
    KEY_OPENAPI,
    KEY_RESPONSES,
    REPLAYED,
    KeyRefused,
    key_of,
    respond,
)
from fulmen.errors import NotFoundError
from fulmen.lifecycle import RunState
from fulmen.store import (
    Answer,
    DataclipType,
    Enqueued,
    EnqueueRequest,
    IdempotencyKey,
    NewDataclip,
    Priority,
    Queue,
    Run,
    TriggerType,
    WebhookReply,
)

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()

#: Headers that carry credentials: never stored in a dataclip.
_SECRET_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


class BadBody(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@router.post(
    "/i/{trigger_id}",
    tags=["webhooks"],
    summary="Start a run from a webhook",
    responses=KEY_RESPONSES,
    openapi_extra=KEY_OPENAPI,
)
async def webhook(
    trigger_id: str,
    request: Request,
) -> Response:
    c: Coordinator = request.app.state.coordinator
    try:
        info = await c.store.get_trigger(trigger_id)
    except NotFoundError:
        return _problem(404, "not_found", f"no webhook trigger {trigger_id}")
    trigger = info.trigger
    if trigger.type is not TriggerType.WEBHOOK or not trigger.enabled:
        return _problem(404, "not_found", f"no webhook trigger {trigger_id}")
    # A trigger without auth methods takes every request: its secrets (none) are not read.
    secrets = await c.store.get_webhook_secrets(trigger_id) if info.has_auth else []
    decision = webhook_auth.check(secrets, request.headers)
    if not decision.allowed:
        log.warning("webhook %s: request refused (%s)", trigger_id, decision.reason)
        # RFC 9110 wants a challenge with every 401; Basic is the one a client can answer.
        refused = _problem(401, "unauthorized", "this webhook requires authentication")
        refused.headers["www-authenticate"] = 'Basic realm="webhook"'
        return refused
    try:
        body = _parse(await request.body())
    except BadBody as bad:
        # a body said to be JSON that is not is a bad request; one said to be something
        # else is of a type webhooks do not take
        return _problem(400 if _declared_json(request) else 415, bad.code, bad.message)
    try:
        # the query string goes into the run's input with the body
        asked: JSON = {"query": request.url.query, "body": body}
        key = key_of(request, f"webhook {trigger_id}", asked, c.settings.idempotency_key_ttl)
    except KeyRefused as bad_key:
        return _problem(400, bad_key.code, bad_key.message)
    sync = trigger.webhook_reply is WebhookReply.AFTER_COMPLETION
    enqueue = EnqueueRequest(
        workflow_id=info.workflow_id,
        input=NewDataclip(DataclipType.HTTP_REQUEST, body, request=_metadata(request)),
        trigger_id=trigger_id,
        queue=Queue.FAST_LANE if sync else Queue.DEFAULT,
        priority=Priority.IMMEDIATE,
        options=c.run_options(),
    )
    if key is None:
        enqueued = await c.store.enqueue(enqueue)
        _started(c)
        ids = _ids(enqueued)
        return await _after_completion(c, ids) if sync else JSONResponse(ids)
    return await _once(c, enqueue, key, sync)


async def _once(
    c: Coordinator, enqueue: EnqueueRequest, key: IdempotencyKey, sync: bool
) -> Response:
    """The run under ``key``: made and answered, or the first answer again. A trigger that
    answers after completion is answered from the run as it is now, the first time and on a
    replay alike: a retry of a cut request gets the run's outcome."""
    answered = await c.store.enqueue_once(
        enqueue, key, lambda made: Answer(202 if sync else 200, _ids(made), deferred=sync)
    )
    if not answered.replayed:
        _started(c)
    if not answered.answer.deferred:
        return respond(answered)
    response = await _after_completion(c, _stored_ids(answered.answer.body))
    if answered.replayed:
        response.headers[REPLAYED] = "true"
    return response


def _started(c: Coordinator) -> None:
    c.metrics.enqueued.labels("webhook").inc()
    c.hub.work_available()


def _ids(enqueued: Enqueued) -> dict[str, JSON]:
    return {"work_order_id": enqueued.work_order_id, "run_id": enqueued.run_id}


def _stored_ids(body: object) -> dict[str, JSON]:
    """The ids a deferred answer was recorded with (:func:`_ids`)."""
    assert isinstance(body, dict), body
    return {"work_order_id": str(body["work_order_id"]), "run_id": str(body["run_id"])}


def _parse(raw: bytes) -> JSON:
    if not raw.strip():
        return {}
    try:
        value: JSON = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadBody("not_json", f"the body is not JSON ({error}); webhooks take JSON") from None
    if _holds_nul(raw):
        raise BadBody("bad_json", "the body holds a NUL character (\\u0000)")
    return value


def _holds_nul(raw: bytes) -> bool:
    # PostgreSQL's jsonb cannot hold it, so neither store accepts it (store/db.py dumps).
    return b"\\u0000" in raw


def _declared_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json") or not kind


def _metadata(request: Request) -> JSON:
    headers: dict[str, JSON] = {
        name: value for name, value in request.headers.items() if name not in _SECRET_HEADERS
    }
    query: dict[str, JSON] = dict(request.query_params.items())
    return {
        "method": request.method,
        "path": request.url.path,
        "query_params": query,
        "headers": headers,
    }


async def _after_completion(c: Coordinator, ids: dict[str, JSON]) -> Response:
    run_id = str(ids["run_id"])
    run = await c.hub.wait_finished(run_id, c.settings.webhook_response_timeout)
    if run is None:
        return JSONResponse(
            {**ids, "state": "pending", "message": "the run has not finished yet"}, 202
        )
    memory = c.memories.peek(run_id)
    custom = memory.webhook_response if memory is not None else None
    custom = custom or {}
    status = custom.get("status")
    code = int(status) if isinstance(status, int | float) and 100 <= status <= 599 else 201
    headers = {
        "x-work-order-id": run.work_order_id,
        "x-run-id": run.id,
        "x-run-state": run.state.value,
    }
    if "body" in custom:
        return JSONResponse(custom["body"], code, headers=headers)
    body = await _outcome(c, run, memory.final_state if memory else None)
    return JSONResponse(body, code, headers=headers)


async def _outcome(c: Coordinator, run: Run, final_state: JSON) -> JSON:
    """The final state of a successful run; of a failed one, what happened but not its state
    (it may hold what the job was handling when it failed)."""
    if run.state is not RunState.SUCCESS:
        return {
            "work_order_id": run.work_order_id,
            "run_id": run.id,
            "state": run.state.value,
            "error_type": run.error_type,
            "message": "the run did not succeed; its final state is withheld",
        }
    if final_state is None and run.final_dataclip_id is not None:
        final_state = _json((await c.store.get_dataclip(run.final_dataclip_id)).body)
    return final_state


def _json(value: object) -> JSON:
    """A stored document (plain dicts and lists, as the store gives them back) as JSON."""
    return value  # type: ignore[return-value]


def _problem(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status)
