"""A create request, checked: every field of ``POST /workers`` (spec runner.md §3.3). Pure.

The body has already been decoded (``body.py``) into fields: JSON values for a JSON body,
text or :class:`Upload` values for a form. Everything is validated here before anything is
stored or started, so a bad request creates nothing. Escrin's era A field names are the
compatibility target; ``code`` and ``sw`` are accepted as aliases of ``script`` and
``classic`` (era B).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fulmen import cron
from fulmen.errors import FulmenError, RunnerError
from fulmen.runner import topics
from fulmen.runner.policy import validate_policy

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_SCRIPT_BYTES",
    "Upload",
    "WorkerSpec",
    "check_name",
    "check_script",
    "parse",
]

MAX_SCRIPT_BYTES: Final = 1 << 20
MAX_CONFIG_BYTES: Final = 64 * 1024
_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_FIELDS: Final = frozenset(
    {"script", "code", "type", "name", "config", "schedule", "timezone", "events", "args",
     "policy", "identity", "run_on_create", "error_policy"}
)  # fmt: skip
_TYPES: Final = {"module": "module", "classic": "classic", "sw": "classic"}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Upload:
    """A file field of a multipart form, already read as UTF-8 text."""

    text: str
    filename: str


@dataclass(frozen=True)
class WorkerSpec:
    """What a smart worker is; ``config`` is private and never leaves the runner but sealed."""

    script: str
    type: str
    name: str | None
    config: dict[str, Any]
    schedule: str | None
    timezone: str
    events: tuple[str, ...]
    args: dict[str, Any]
    policy: dict[str, Any]
    identity: str | None
    run_on_create: bool
    error_policy: str

    @property
    def script_sha256(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()


def parse(fields: Mapping[str, object], *, now: datetime | None = None) -> WorkerSpec:
    """Check every field; ``now`` is when a schedule must next fire after (default: now).

    Raises:
        RunnerError: ``bad_request`` (a field), ``invalid_cron`` (schedule or timezone),
            ``too_large`` (script or config over their limits).
    """
    unknown = sorted(set(fields) - _FIELDS)
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}")
    schedule = _schedule(fields.get("schedule"))
    timezone = _text(fields, "timezone") or "UTC"
    if schedule is not None or "timezone" in fields:
        _check_cron(schedule or "* * * * *", timezone, now or datetime.now(UTC))
    return WorkerSpec(
        script=check_script(_script(fields)),
        type=_type(fields.get("type")),
        name=_name(fields.get("name")),
        config=_object(fields.get("config"), "config", MAX_CONFIG_BYTES),
        schedule=schedule,
        timezone=timezone,
        events=_events(fields.get("events")),
        args=_object(fields.get("args"), "args", MAX_CONFIG_BYTES),
        policy=validate_policy(_object(fields.get("policy"), "policy", MAX_CONFIG_BYTES)),
        identity=_name(fields.get("identity"), what="identity"),
        run_on_create=_boolean(fields.get("run_on_create"), "run_on_create", default=True),
        error_policy=_choice(fields.get("error_policy"), "error_policy", ("continue", "terminate")),
    )


def check_script(source: str) -> str:
    """The script, if it compiles as Python; ``bad_request`` naming the line if not.

    Compiling parses only: nothing of the script runs in the runner.
    """
    try:
        compile(source, "<script>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise _bad(f"the script does not compile: {exc.msg} (line {exc.lineno})") from None
    except ValueError as exc:  # null bytes
        raise _bad(f"the script does not compile: {exc}") from None
    return source


def _script(fields: Mapping[str, object]) -> str:
    if "script" in fields and "code" in fields:
        raise _bad("give script or code, not both")
    value = fields.get("script", fields.get("code"))
    text = value.text if isinstance(value, Upload) else value
    if not isinstance(text, str) or not text.strip():
        raise _bad("script is required: the worker's Python source")
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        raise RunnerError(f"script is over {MAX_SCRIPT_BYTES} bytes", code="too_large")
    return text


def _type(value: object) -> str:
    if value is None or value == "":
        return "module"
    if not isinstance(value, str) or value not in _TYPES:
        raise _bad(f"unknown type {value!r}: 'module' or 'classic'")
    return _TYPES[value]


def _name(value: object, *, what: str = "name") -> str | None:
    if value is None or value == "":
        return None
    return check_name(value, what)


def check_name(value: object, what: str) -> str:
    """A worker or identity name: 1-64 of ``A-Z a-z 0-9 _ . -``; ``bad_request`` if not."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _bad(f"{what} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def _object(value: object, what: str, limit: int) -> dict[str, Any]:
    """A JSON object, given as one or as text holding one (a form field, or a file)."""
    if value is None or value == "":
        return {}
    if isinstance(value, Upload):
        if what != "config":
            raise _bad(f"{what} cannot be a file upload")
        value = value.text
    if isinstance(value, str):
        if len(value.encode()) > limit:
            raise RunnerError(f"{what} is over {limit} bytes", code="too_large")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _bad(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _bad(f"{what} must be a JSON object")
    if len(json.dumps(value).encode()) > limit:
        raise RunnerError(f"{what} is over {limit} bytes", code="too_large")
    return value


def _schedule(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad("schedule must be a cron expression")
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()  # curl -F 'schedule="*/5 * * * *"' keeps quotes in some shells
    return text or None


def _check_cron(expression: str, timezone: str, now: datetime) -> None:
    try:
        cron.next_fire(cron.parse(expression, timezone), now)
    except FulmenError as exc:
        raise RunnerError(f"invalid schedule: {exc.message}", code="invalid_cron") from None


def _events(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _bad("events must be a list of topics")
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    for name in names:
        if not topics.is_subscription(name):
            raise _bad(f"event topic {name!r} must be [a-z0-9_.-]+, optionally ending in .*")
    return names


def _boolean(value: object, what: str, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _bad(f"{what} must be true or false")


def _choice(value: object, what: str, choices: tuple[str, ...]) -> str:
    if value is None or value == "":
        return choices[0]
    if value not in choices:
        raise _bad(f"{what} must be one of {', '.join(choices)}")
    return str(value)


def _text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be text")
    return value.strip()


def _bad(message: str) -> RunnerError:
    return RunnerError(message, code="bad_request")
