"""The runner's OpenAPI document (3.1), served at ``GET /openapi.json`` (spec runner.md §3.3).

The runner is plain Starlette routes (``api.py``), not FastAPI, so nothing derives a document
from its handlers: it is written here, as data, beside the routes it describes, and
``tests/integration/test_runner_openapi.py`` holds the two together (the schemas of bodies
and answers are ``openapi_schemas.py``'s): every route of
``routes()`` is documented with its methods and path parameters, every documented path and
method is a route, the document is valid OpenAPI, and a served runner's real answers match
the schemas given for them. A route added without its documentation fails that test.

The document is served without the API token, like ``/healthz``, and like the coordinator's
own ``/openapi.json``: it describes the API's shape, never a worker, a config or a token, and
all of it is in the source anyway; the tools that read it (schemathesis, a client generator,
the docs' API reference) then need no secret.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from fulmen import __version__
from fulmen.runner.openapi_schemas import SCHEMAS, ref

__all__ = ["document"]

Doc = dict[str, Any]

_ANY: Final = ("get", "head", "post", "put", "patch", "delete", "options")
#: Each refusal's status, what it means here, as a shared response.
_ERRORS: Final = {
    400: ("BadRequest", "A bad body, field, cron expression or script."),
    401: ("Unauthorized", "No API token, or the wrong one (the message says where it is)."),
    403: ("Forbidden", "Not allowed: a wrong identity admin token, a key policy that says no."),
    404: ("NotFound", "No such worker, identity or handler."),
    409: ("Conflict", "A name taken, too many workers, or a refused worker."),
    413: ("TooLarge", "The body is over its limit."),
    415: ("UnsupportedMediaType", "Not JSON, urlencoded or multipart."),
    500: ("HandlerRaised", "The worker's handler raised (its traceback goes to its log only)."),
    502: ("Crashed", "The worker's process died during the request."),
    503: ("NotReady", "The worker is not ready, or its sandbox failed."),
    504: ("Timeout", "The handler did not answer in time."),
}


def _errors(*statuses: int) -> Doc:
    return {str(s): ref("responses", _ERRORS[s][0]) for s in statuses}


def _json(schema: Doc, description: str) -> Doc:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, description: str) -> Doc:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}  # fmt: skip


_WORKER_REF: Final = _path_param("ref", "The worker's id, or its name.")


def _create() -> Doc:
    return {
        "summary": "Create a worker",
        "description": "Validates everything, stores, starts the script and waits for it to "
        "load; then, if run_on_create, starts tasks without waiting for it.",
        "operationId": "createWorker",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ref("schemas", "CreateWorker")},
                "application/x-www-form-urlencoded": {"schema": ref("schemas", "CreateWorkerForm")},
                "multipart/form-data": {"schema": ref("schemas", "CreateWorkerMultipart")},
            },
        },
        "responses": {
            "201": _json(ref("schemas", "Worker"), "Created, its script loaded."),
            **_errors(400, 401, 409, 413, 415),
        },
    }


def _paths() -> Doc:
    worker = [_WORKER_REF]
    rest = _path_param("rest", "The rest of the path, slashes included.")
    return {
        "/": {
            "post": {
                **_create(),
                "operationId": "createWorkerAtRoot",
                "description": "POST /workers, kept for Escrin's clients.",
            }
        },
        "/workers": {
            "post": _create(),
            "get": _operation(
                "listWorkers",
                "List the workers",
                _json(_array("Worker"), "Every worker."),
                _errors(401),
            ),
        },
        "/workers/{ref}": {
            "parameters": worker,
            "get": _operation(
                "getWorker",
                "One worker, with counts of its recent runs",
                _json(ref("schemas", "WorkerDetail"), "The worker."),
                _errors(401, 404),
            ),
            "delete": _operation(
                "deleteWorker",
                "Stop and forget a worker",
                {"description": "Deleted."},
                _errors(401, 404, 409),
                status=204,
                description="Its process, triggers, script, config, runs and logs. Its key is "
                "kept unless purge_key, and even then while another worker or a named identity "
                "holds it.",
                parameters=[
                    _query("purge_key", {"type": "string"}, "1, true or yes: its key too.")
                ],
            ),
        },
        "/workers/{ref}/run": {
            "parameters": worker,
            "post": _operation(
                "runWorker",
                "Run tasks now, without waiting for it",
                _json(ref("schemas", "RunStarted"), "Started."),
                _errors(401, 404, 409, 503),
                status=202,
            ),
        },
        "/workers/{ref}/restart": {
            "parameters": worker,
            "post": _operation(
                "restartWorker",
                "Restart the process and clear its crash count",
                _json({"type": "object"}, "Restarted."),
                _errors(401, 404, 409),
                status=202,
            ),
        },
        "/workers/{ref}/runs": {
            "parameters": worker,
            "get": _operation(
                "listRuns",
                "The worker's runs, newest first",
                _json(_array("Run"), "Its runs."),
                _errors(400, 401, 404),
                parameters=[_limit(50)],
            ),
        },
        "/workers/{ref}/logs": {
            "parameters": worker,
            "get": _operation(
                "getLogs",
                "The worker's log, oldest first: the latest limit records after since",
                _json(_array("LogRecord"), "Its log."),
                _errors(400, 401, 404),
                parameters=[
                    _limit(200),
                    _query(
                        "since",
                        {"type": "string"},
                        "Only records after this: ISO 8601 (UTC unless it says), or unix seconds.",
                    ),
                ],
            ),
        },
        "/workers/{ref}/fetch": {"parameters": worker, **_fetch("fetch")},
        "/workers/{ref}/fetch/{rest}": {"parameters": [*worker, rest], **_fetch("fetchPath")},
        "/events/{topic}": {
            "parameters": [_path_param("topic", "[a-z0-9_.-]+")],
            "post": _operation(
                "publishEvent",
                "Publish an event to the workers subscribed to its topic",
                _json(ref("schemas", "EventPublished"), "Delivered, at most once, to these."),
                _errors(400, 401, 413),
                status=202,
                body={
                    "description": "Any JSON, at most 256 KiB.",
                    "content": {"application/json": {"schema": {}}},
                },
            ),
        },
        "/identities": {
            "post": _operation(
                "createIdentity",
                "Register a named identity",
                _json(ref("schemas", "IdentityCreated"), "Registered."),
                _errors(400, 401, 409),
                status=201,
                body=_json_body("CreateIdentity"),
            ),
        },
        "/identities/{name}": {
            "parameters": [_path_param("name", "The identity's name.")],
            "get": _operation(
                "getIdentity",
                "A named identity and its policy",
                _json(ref("schemas", "Identity"), "The identity."),
                _errors(401, 404),
            ),
            "put": _operation(
                "putIdentity",
                "Replace a named identity's policy",
                _json(ref("schemas", "Identity"), "Replaced."),
                _errors(400, 401, 403, 404),
                description="Needs the identity's admin token as well as the API token: "
                "X-Identity-Token, or admin_token in the body.",
                parameters=[
                    {"name": "X-Identity-Token", "in": "header", "schema": {"type": "string"}}
                ],
                body=_json_body("PutIdentity"),
            ),
        },
        "/healthz": {
            "get": _operation(
                "healthz", "Liveness", _json(ref("schemas", "Health"), "Serving."), {}, public=True
            ),
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                _json({"type": "object"}, "OpenAPI 3.1."),
                {},
                public=True,
            ),
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    answer: Doc,
    errors: Doc,
    *,
    status: int | str = 200,
    description: str | None = None,
    parameters: list[Doc] | None = None,
    body: Doc | None = None,
    public: bool = False,
) -> Doc:
    """One operation: its answer on success (``status``; ``default``: any) and its refusals."""
    operation: Doc = {"operationId": operation_id, "summary": summary}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    if public:
        operation["security"] = []
    operation["responses"] = {str(status): answer, **errors}
    return operation


def _fetch(name: str) -> Doc:
    """The HTTP trigger: any method, each its own operation (``fetchGet``, ``fetchPost``…)."""
    return {method: _fetch_operation(f"{name}{method.capitalize()}", method) for method in _ANY}


def _fetch_operation(operation_id: str, method: str) -> Doc:
    return _operation(
        operation_id,
        "The worker's HTTP trigger",
        {"description": "Whatever the worker answers."},
        _errors(404, 413, 500, 502, 503, 504),
        status="default",
        description="Becomes the worker's fetch(request): request.path is /{rest}, the query "
        "and headers are kept. Public: no API token.",
        body=None if method == "head" else {"content": {"*/*": {"schema": {}}}},
        public=True,
    )


def _array(schema: str) -> Doc:
    return {"type": "array", "items": ref("schemas", schema)}


def _json_body(schema: str) -> Doc:
    return {"required": True, "content": {"application/json": {"schema": ref("schemas", schema)}}}


def _query(name: str, schema: Doc, description: str) -> Doc:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _limit(default: int) -> Doc:
    schema = {"type": "integer", "minimum": 1, "maximum": 1000, "default": default}
    return _query("limit", schema, "At most this many, the latest.")


def document() -> Doc:
    """The whole document, a copy of its own for each caller."""
    return copy.deepcopy(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Fulmen runner",
                "version": __version__,
                "description": "Smart workers: Python scripts with private config, cron, HTTP and "
                "event triggers, and keys bound to their identity. Every time is ISO 8601 in UTC; "
                "every error is {error, code}.",
            },
            "security": [{"bearer": []}],
            "paths": _paths(),
            "components": {
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The runner's API token (<state dir>/api-token, or "
                        "--api-token-file).",
                    }
                },
                "schemas": SCHEMAS,
                "responses": {
                    name: _json(ref("schemas", "Error"), meaning)
                    for name, meaning in _ERRORS.values()
                },
            },
        }
    )
