"""The shapes of the runner API's bodies and answers, as JSON Schema (2020-12, as OpenAPI 3.1
takes it): the ``components.schemas`` of its OpenAPI document (``openapi.py``). Pure data.

Each shape is what ``api.py`` and the runner's service really send or take, checked by
``tests/integration/test_runner_openapi.py`` against a served runner's answers: a worker as
``Runner.summary`` shows it (never its config or script), a run as the registry keeps it, a
log record as the log book writes it, every time ISO 8601 in UTC, every error
``{error, code}``. Limits come from where they are enforced (``spec.py``, ``policy.py``).
"""

from __future__ import annotations

from typing import Any, Final

from fulmen.runner.policy import ISOLATION_ORDER
from fulmen.runner.spec import MAX_CONFIG_BYTES, MAX_SCRIPT_BYTES

__all__ = ["SCHEMAS", "ref"]

Doc = dict[str, Any]

_NAME_PATTERN: Final = "^[A-Za-z0-9_.-]{1,64}$"
_STATES: Final = ["starting", "ready", "crashed", "failed", "stopped", "refused"]
_HEX_256: Final = "^[0-9a-f]{64}$"


def _object(properties: Doc, *, optional: tuple[str, ...] = ()) -> Doc:
    """An object with these properties, all required but the ``optional`` ones."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties}


def ref(kind: str, name: str) -> Doc:
    """A reference to ``#/components/<kind>/<name>``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(kind: str, **more: Any) -> Doc:
    return {"type": [kind, "null"], **more}


_TIME: Final = {"type": "string", "format": "date-time", "description": "ISO 8601, in UTC."}
_MAYBE_TIME: Final = {**_nullable("string", format="date-time"), "description": "ISO 8601, UTC."}

#: The error every refusal answers with; ``code`` is stable (api.py's STATUS maps it to the
#: HTTP status), the message is for people.
_ERROR: Final = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person."},
        "code": {
            "type": "string",
            "description": "Stable: bad_request, invalid_cron, script_load_failed, "
            "unauthorized, forbidden, key_denied, not_found, no_handler, name_taken, "
            "too_many_workers, refused, too_large, unsupported_media_type, "
            "method_not_allowed, handler_raised, crashed, not_ready, sandbox_error, timeout…",
        },
    },
}

_POLICY: Final = {
    "type": "object",
    "additionalProperties": False,
    "description": "Who may hold the identity's key (runner.md §3.8); every field present must "
    "hold.",
    "properties": {
        "scripts": {"type": "array", "items": {"type": "string", "pattern": _HEX_256}},
        "types": {"type": "array", "items": {"enum": ["module", "classic"]}},
        "not_before": {"type": "number", "description": "Unix seconds."},
        "not_after": {"type": "number", "description": "Unix seconds."},
        "min_isolation": {"enum": list(ISOLATION_ORDER)},
        "max_instances": {"type": "number"},
    },
}

_WORKER: Final = {
    "type": "object",
    "description": "What the API shows of a worker: never its config, never its script.",
    "required": ["id", "name", "type", "state", "schedule", "timezone", "events", "created_at",
                 "last_run", "next_run", "isolation", "identity_id", "handlers"],
    "properties": {
        "id": {"type": "string"},
        "name": _nullable("string"),
        "type": {"enum": ["module", "classic"]},
        "state": {"enum": _STATES},
        "schedule": _nullable("string", description="Cron, five fields."),
        "timezone": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}},
        "created_at": _TIME,
        "last_run": _MAYBE_TIME,
        "next_run": _MAYBE_TIME,
        "isolation": {"type": "string", "description": "The sandbox, as min_isolation ranks it."},
        "identity_id": {"type": "string", "pattern": _HEX_256},
        "identity": _nullable("string", description="The named identity, if any."),
        "script_sha256": {"type": "string", "pattern": _HEX_256},
        "handlers": {"type": "array", "items": {"enum": ["tasks", "fetch", "event"]}},
        "pid": _nullable("integer"),
        "args": {"type": "object"},
        "error_policy": {"enum": ["continue", "terminate"]},
    },
}  # fmt: skip

_CREATE_FIELDS: Final = {
    "script": {"type": "string", "description": f"Python source, at most {MAX_SCRIPT_BYTES} "
               "bytes."},
    "code": {"type": "string", "description": "Another name for script (Escrin era B)."},
    "type": {"enum": ["module", "classic", "sw"], "default": "module",
             "description": "sw is classic."},
    "name": {"type": "string", "pattern": _NAME_PATTERN,
             "description": "Unique among live workers (409)."},
    "schedule": {"type": "string", "description": "Cron: five fields or a macro (@daily)."},
    "timezone": {"type": "string", "default": "UTC", "description": "An IANA name."},
    "identity": {"type": "string", "pattern": _NAME_PATTERN,
                 "description": "A registered identity's name."},
    "error_policy": {"enum": ["continue", "terminate"], "default": "continue"},
}  # fmt: skip

_CONFIG_TEXT: Final = (
    f"The worker's private config, a JSON object of at most {MAX_CONFIG_BYTES} bytes; "
    "never shown again."
)

_CREATE_JSON: Final = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["script"]}, {"required": ["code"]}],
    "properties": {
        **_CREATE_FIELDS,
        "config": {"type": ["object", "string"], "description": _CONFIG_TEXT + " Or a string "
                   "holding one."},
        "events": {"type": "array", "items": {"type": "string"},
                   "description": "Topics; a.* matches a prefix."},
        "args": {"type": "object", "description": "Public arguments the script reads."},
        "policy": ref("schemas", "Policy"),
        "run_on_create": {"type": "boolean", "default": True},
    },
}  # fmt: skip

_CREATE_FORM: Final[Doc] = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["script"]}, {"required": ["code"]}],
    "properties": {
        **_CREATE_FIELDS,
        "config": {"type": "string", "description": _CONFIG_TEXT + " As JSON text."},
        "events": {"type": "string", "description": "Topics, separated by commas."},
        "args": {"type": "string", "description": "A JSON object, as text."},
        "policy": {"type": "string", "description": "A JSON object, as text."},
        "run_on_create": {"type": "string", "description": "true or false (1/0, yes/no)."},
    },
}  # fmt: skip

_CREATE_MULTIPART: Final = {
    **_CREATE_FORM,
    "properties": {
        **_CREATE_FORM["properties"],
        "script": {"type": "string", "description": "A text field or an uploaded file (UTF-8)."},
        "config": {"type": "string", "description": _CONFIG_TEXT + " A text field or an "
                   "uploaded file (UTF-8)."},
    },
}  # fmt: skip

_RUN: Final = {
    "type": "object",
    "description": "One invocation of tasks, or a fire that did not run (skipped, missed).",
    "required": ["id", "worker_id", "trigger", "scheduled_at", "started_at", "ended_at",
                 "outcome", "error"],
    "properties": {
        "id": {"type": "integer"},
        "worker_id": {"type": "string"},
        "trigger": {"type": "string", "description": "create, manual, cron…"},
        "scheduled_at": _MAYBE_TIME,
        "started_at": _TIME,
        "ended_at": _MAYBE_TIME,
        "outcome": {"type": "string", "description": "running, ok, or an error code."},
        "error": _nullable("string", description="Config values masked."),
    },
}  # fmt: skip

_LOG_RECORD: Final = {
    "type": "object",
    "description": "A line of the worker's stdout, stderr or log, or a record of the runner "
    "about it (with event and its own fields); config values masked.",
    "required": ["ts", "stream", "line"],
    "properties": {
        "ts": _TIME,
        "stream": {"enum": ["stdout", "stderr", "log", "runner"]},
        "line": {"type": "string"},
        "event": {"type": "string", "description": "The runner's records: what happened."},
        "scheduled_at": {**_TIME, "description": "A skipped or missed fire's: when it was due."},
    },
}

SCHEMAS: Final = {
    "Error": _ERROR,
    "Worker": _WORKER,
    "WorkerDetail": {
        "allOf": [
            ref("schemas", "Worker"),
            {
                "type": "object",
                "required": ["recent_runs"],
                "properties": {
                    "recent_runs": {
                        "type": "object",
                        "description": "The last 100 runs, counted by outcome.",
                        "additionalProperties": {"type": "integer"},
                    }
                },
            },
        ]
    },
    "CreateWorker": _CREATE_JSON,
    "CreateWorkerForm": _CREATE_FORM,
    "CreateWorkerMultipart": _CREATE_MULTIPART,
    "Policy": _POLICY,
    "Run": _RUN,
    "LogRecord": _LOG_RECORD,
    "RunStarted": _object({"run_id": {"type": "integer"}}),
    "EventPublished": _object(
        {
            "event_id": {"type": "string"},
            "delivered_to": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "CreateIdentity": _object(
        {"name": {"type": "string", "pattern": _NAME_PATTERN}, "policy": ref("schemas", "Policy")}
    ),
    "PutIdentity": _object(
        {"policy": ref("schemas", "Policy"), "admin_token": {"type": "string"}},
        optional=("admin_token",),
    ),
    "IdentityCreated": _object(
        {
            "name": {"type": "string"},
            "identity_id": {"type": "string", "pattern": _HEX_256},
            "admin_token": {"type": "string", "description": "Shown this once only."},
        }
    ),
    "Identity": _object(
        {
            "name": {"type": "string"},
            "identity_id": {"type": "string", "pattern": _HEX_256},
            "policy": ref("schemas", "Policy"),
        }
    ),
    "Health": _object(
        {"ok": {"const": True}, "workers": {"type": "integer"}, "isolation": {"type": "string"}}
    ),
}
