"""A create request, checked: every field of ``POST /workers`` (spec runner.md §3.3). Pure.

The body has already been decoded (``body.py``) into fields: JSON values for a JSON body,
text or :class:`Upload` values for a form. Everything is validated here before anything is
stored or started, so a bad request creates nothing. Escrin's era A field names are the
compatibility target; ``code`` and ``sw`` are accepted as aliases of ``script`` and
``classic`` (era B).
"""

from __future__ import annotations

import dataclasses
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
from fulmen.validation import Reader, join, kind

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
_NAME_RULE: Final = "must be 1-64 characters of A-Z a-z 0-9 _ . -"
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

    Every field's problem is reported at once, in fulmen.validation's words
    (``name: must be 1-64 characters …; events: must be a list of topics, not a number``).

    Raises:
        RunnerError: ``bad_request`` (the fields' problems), ``invalid_cron`` (schedule or
            timezone), ``too_large`` (script or config over their limits).
    """
    r = Reader()
    for name in sorted(set(fields) - _FIELDS):
        r.problem(name, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    script = _script(r, fields)
    spec = WorkerSpec(
        script=script,
        type=_type(r, fields.get("type")),
        name=_name(r, fields.get("name")),
        config=_object(r, fields.get("config"), "config", MAX_CONFIG_BYTES),
        schedule=_schedule(r, fields.get("schedule")),
        timezone=_text(r, fields, "timezone") or "UTC",
        events=_events(r, fields.get("events")),
        args=_object(r, fields.get("args"), "args", MAX_CONFIG_BYTES),
        policy=_object(r, fields.get("policy"), "policy", MAX_CONFIG_BYTES),
        identity=_name(r, fields.get("identity"), what="identity"),
        run_on_create=_boolean(r, fields.get("run_on_create"), "run_on_create", default=True),
        error_policy=_choice(
            r, fields.get("error_policy"), "error_policy", ("continue", "terminate")
        ),
    )
    if r.problems:
        raise _bad("; ".join(r.lines()))
    if spec.schedule is not None or "timezone" in fields:
        _check_cron(spec.schedule or "* * * * *", spec.timezone, now or datetime.now(UTC))
    return dataclasses.replace(
        spec, script=check_script(script), policy=validate_policy(spec.policy)
    )


def check_script(source: str) -> str:
    """The script, if it compiles as Python; ``bad_request`` naming the line if not.

    Compiling parses only: nothing of the script runs in the runner.
    """
    try:
        compile(source, "<script>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise _bad(f"script: does not compile: {exc.msg} (line {exc.lineno})") from None
    except ValueError as exc:  # null bytes
        raise _bad(f"script: does not compile: {exc}") from None
    return source


def _script(r: Reader, fields: Mapping[str, object]) -> str:
    if "script" in fields and "code" in fields:
        r.problem("script", "give script or code, not both")
        return ""
    value = fields.get("script", fields.get("code"))
    text = value.text if isinstance(value, Upload) else value
    if not isinstance(text, str) or not text.strip():
        r.problem("script", "is required (the worker's Python source)")
        return ""
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        raise RunnerError(f"script: is over {MAX_SCRIPT_BYTES} bytes", code="too_large")
    return text


def _type(r: Reader, value: object) -> str:
    if value is None or value == "":
        return "module"
    if not isinstance(value, str) or value not in _TYPES:
        r.problem("type", f"must be one of module, classic, not {value!r}")
        return "module"
    return _TYPES[value]


def _name(r: Reader, value: object, *, what: str = "name") -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        r.problem(what, _NAME_RULE)
        return None
    return value


def check_name(value: object, what: str) -> str:
    """A worker or identity name: 1-64 of ``A-Z a-z 0-9 _ . -``; ``bad_request`` if not."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _bad(f"{what}: {_NAME_RULE}")
    return value


def _object(r: Reader, value: object, what: str, limit: int) -> dict[str, Any]:
    """A JSON object, given as one or as text holding one (a form field, or a file)."""
    if value is None or value == "":
        return {}
    if isinstance(value, Upload):
        if what != "config":
            r.problem(what, "cannot be a file upload")
            return {}
        value = value.text
    if isinstance(value, str):
        if len(value.encode()) > limit:
            raise RunnerError(f"{what}: is over {limit} bytes", code="too_large")
        try:
            value = json.loads(value)
        except ValueError as exc:
            r.problem(what, f"is not valid JSON: {exc}")
            return {}
    if not isinstance(value, dict):
        r.problem(what, f"must be an object, not {kind(value)}")
        return {}
    if len(json.dumps(value).encode()) > limit:
        raise RunnerError(f"{what}: is over {limit} bytes", code="too_large")
    return value


def _schedule(r: Reader, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        r.problem("schedule", f"must be a cron expression, not {kind(value)}")
        return None
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()  # curl -F 'schedule="*/5 * * * *"' keeps quotes in some shells
    return text or None


def _check_cron(expression: str, timezone: str, now: datetime) -> None:
    try:
        cron.next_fire(cron.parse(expression, timezone), now)
    except FulmenError as exc:
        raise RunnerError(f"invalid schedule: {exc.message}", code="invalid_cron") from None


def _events(r: Reader, value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        r.problem("events", f"must be a list of topics, not {kind(value)}")
        return ()
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    for index, name in enumerate(names):
        if not topics.is_subscription(name):
            r.problem(
                join("events", index), f"{name!r}: must be [a-z0-9_.-]+, optionally ending in .*"
            )
    return names


def _boolean(r: Reader, value: object, what: str, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    r.problem(what, f"must be true or false, not {kind(value)}")
    return default


def _choice(r: Reader, value: object, what: str, choices: tuple[str, ...]) -> str:
    if value is None or value == "":
        return choices[0]
    if value not in choices:
        r.problem(what, f"must be one of {', '.join(choices)}, not {value!r}")
        return choices[0]
    return str(value)


def _text(r: Reader, fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        r.problem(name, f"must be text, not {kind(value)}")
        return None
    return value.strip()


def _bad(message: str) -> RunnerError:
    return RunnerError(message, code="bad_request")
