"""Key policies and worker identities (spec runner.md §3.8). Pure: no clock, no store.

A worker's omni key belongs to its *identity*. By default the identity is a hash of what the
worker is: ``SHA-256("smartworker/identity/v1\\0" || canonical_json({kind, script_sha256,
type, policy}))``, so the same script, type and policy share one key, one changed byte gives
another, and the policy cannot be loosened later without changing the key. A *named*
identity has a random id and a policy its owner may replace; a worker created with it gets
its key only while that policy admits it (the way Escrin's permitter decides which code may
hold an identity).

A policy is declarative JSON; no code runs. Unknown fields are refused (fail closed). Every
field present must hold for the key to be released:

``scripts``        allowed script SHA-256 values (hex). Implicit for a default identity.
``types``          allowed script types (``module``, ``classic``).
``not_before``     unix seconds; ``not_after`` likewise.
``min_isolation``  ``process`` < ``landlock`` < ``uid`` < ``L2`` < ``L3``: the weakest sandbox
                   allowed. ``L2`` and ``L3`` are the levels of the README's "Security
                   model" (namespaces, and cgroups with a network namespace); the older
                   names rank what lies below them: no Landlock (L0), Landlock with the
                   child as uid 0, Landlock with the child as another uid (L1).
``max_instances``  how many live workers may hold the identity at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fulmen.errors import RunnerError

__all__ = [
    "ISOLATION_ORDER",
    "Evidence",
    "canonical_json",
    "default_identity",
    "evaluate",
    "validate_policy",
]

ISOLATION_ORDER: Final = ("process", "landlock", "uid", "L2", "L3")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_TYPES: Final = frozenset({"module", "classic"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the runner itself knows about the worker asking (never what the worker says)."""

    worker_id: str
    script_sha256: str
    type: str
    isolation: str
    now: float
    live_instances: int


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always hashes the same."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def default_identity(script_sha256: str, type_: str, policy: Mapping[str, Any]) -> bytes:
    """The 32-byte identity of a worker that names no identity."""
    document = {"kind": "script", "script_sha256": script_sha256, "type": type_, "policy": policy}
    return hashlib.sha256(b"smartworker/identity/v1\0" + canonical_json(document)).digest()


def validate_policy(value: object, *, named: bool = False) -> dict[str, Any]:
    """Check a policy's shape; returns it as given.

    Raises:
        RunnerError: ``bad_request`` naming the first bad field.
    """
    if not isinstance(value, dict):
        raise _bad("policy must be a JSON object")
    unknown = sorted(
        set(value)
        - {"scripts", "types", "not_before", "not_after", "min_isolation", "max_instances"}
    )
    if unknown:
        raise _bad(f"unknown policy field(s): {', '.join(unknown)}")
    _check_list(
        value,
        "scripts",
        lambda s: isinstance(s, str) and bool(_SHA256.fullmatch(s)),
        "lowercase hex SHA-256 values",
    )
    _check_list(value, "types", lambda s: s in _TYPES, "'module' or 'classic'")
    for name in ("not_before", "not_after", "max_instances"):
        item = value.get(name)
        if item is not None and (isinstance(item, bool) or not isinstance(item, int | float)):
            raise _bad(f"policy {name} must be a number")
    if value.get("min_isolation") not in (None, *ISOLATION_ORDER):
        raise _bad(f"policy min_isolation must be one of {', '.join(ISOLATION_ORDER)}")
    if named and "scripts" not in value:
        raise _bad("a named identity's policy must list its scripts")
    return value


def evaluate(policy: Mapping[str, Any], evidence: Evidence) -> tuple[bool, str]:
    """Whether ``policy`` releases the key to the worker ``evidence`` describes, and why not."""
    scripts = policy.get("scripts")
    if scripts is not None and evidence.script_sha256 not in scripts:
        return False, "the policy does not list this script"
    types = policy.get("types")
    if types is not None and evidence.type not in types:
        return False, f"the policy does not allow {evidence.type} scripts"
    if "not_before" in policy and evidence.now < policy["not_before"]:
        return False, "the policy is not valid yet (not_before)"
    if "not_after" in policy and evidence.now > policy["not_after"]:
        return False, "the policy has expired (not_after)"
    wanted = policy.get("min_isolation")
    if wanted is not None and _rank(evidence.isolation) < ISOLATION_ORDER.index(wanted):
        return False, f"the sandbox gives {evidence.isolation} isolation, below {wanted}"
    limit = policy.get("max_instances")
    if limit is not None and evidence.live_instances > limit:
        return False, f"more than {limit} live workers hold this identity"
    return True, "allowed"


def _rank(isolation: str) -> int:
    return ISOLATION_ORDER.index(isolation) if isolation in ISOLATION_ORDER else -1


def _check_list(policy: Mapping[str, Any], name: str, ok: Any, what: str) -> None:
    items = policy.get(name)
    if items is None:
        return
    if not isinstance(items, list) or not all(ok(item) for item in items):
        raise _bad(f"policy {name} must be a list of {what}")


def _bad(message: str) -> RunnerError:
    return RunnerError(message, code="bad_request")
