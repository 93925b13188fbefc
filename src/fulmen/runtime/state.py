"""State going into and out of a step (worker-protocol.md §6.4).

Input: the job's default state overlaid by the incoming state, ``configuration`` merged with
the job's credential, ``data`` merged when both sides are objects. Output: the state minus
``configuration`` and ``response``, serialised to JSON text once, with credential values
masked. Values JSON cannot hold are converted the way a user would expect (dates to ISO text,
bytes to a list of byte values as OpenFn does for Uint8Array, sets to lists) rather than
failing the step.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

from fulmen.scrub import Scrubber

__all__ = ["REMOVED_KEYS", "assemble", "clean_output", "dumps"]

#: Keys stripped from every output (``statePropsToRemove`` in the JS worker).
REMOVED_KEYS = ("configuration", "response")


def assemble(
    default: Mapping[str, Any] | None,
    incoming: Mapping[str, Any],
    credential: Mapping[str, Any] | None,
    shared: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state a job starts with; ``incoming`` must be a private copy (it is reused).
    ``shared``: what every job's configuration gets under its credential (the collections
    endpoint and token, as OpenFn's runtime merges ``plan.workflow.credentials``)."""
    state: dict[str, Any] = {**(default or {}), **incoming}
    default_data = (default or {}).get("data")
    if isinstance(default_data, dict) and isinstance(incoming.get("data"), dict):
        state["data"] = {**default_data, **incoming["data"]}
    state.setdefault("data", {})
    config = incoming.get("configuration")
    state["configuration"] = {
        **(config if isinstance(config, Mapping) else {}),
        **(shared or {}),
        **(credential or {}),
    }
    return state


def clean_output(state: Mapping[str, Any], scrubber: Scrubber) -> str:
    """The step's output as JSON text: removed keys dropped, secrets masked."""
    kept = {k: v for k, v in state.items() if k not in REMOVED_KEYS}
    return dumps(scrubber.value(kept) if scrubber else kept)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return list(bytes(value))
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return repr(value)
