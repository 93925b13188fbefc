"""What crosses a smart worker's channel, in both directions (spec runner.md §3.1).

The channel is a duplex sandbox run: the runner sends with ``RunHandle.send`` and the worker
answers with ``emit``; both carry one JSON object per frame. A *request* has an ``id`` and an
``op``; its *reply* has the same ``id``, no ``op``, and ``ok`` with ``result`` or ``error``.
Each side numbers its own requests, and a reply always travels against its request, so the
two id spaces never meet. A *notice* has an ``op`` and no ``id``, and is not answered.

Runner → worker: request ``invoke`` (``kind``: tasks, fetch or event); notice ``cancel``
(``invocation``: the id of an ``invoke`` that ran out of time); replies to the worker's
requests. Worker → runner: notices ``ready`` (once, after loading) and ``log``; requests
``get_config``, ``omni_key``, ``omni_derive`` and ``emit``; replies to ``invoke``. Bytes are
base64. The runner knows which worker is asking by the channel alone: nothing in a frame
names the worker.

Imported by the worker's process: standard library only.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Final

__all__ = [
    "HANDLER_NAMES",
    "MAX_BODY_BYTES",
    "Kind",
    "Op",
    "b64decode",
    "b64encode",
]


class Op(StrEnum):
    READY = "ready"
    LOG = "log"
    INVOKE = "invoke"
    CANCEL = "cancel"
    GET_CONFIG = "get_config"
    OMNI_KEY = "omni_key"
    OMNI_DERIVE = "omni_derive"
    EMIT = "emit"


class Kind(StrEnum):
    """Handler kinds, as ``classic`` scripts register them."""

    INIT = "init"
    TASKS = "tasks"
    FETCH = "fetch"
    EVENT = "event"


HANDLER_NAMES: Final = {
    Kind.INIT: "init",
    Kind.TASKS: "tasks",
    Kind.FETCH: "fetch",
    Kind.EVENT: "on_event",
}
"""The top-level names a ``module`` script's handlers are found by."""

MAX_BODY_BYTES: Final = 1 << 20
"""Largest HTTP body passed to ``fetch`` or returned by it (§3.4)."""


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object) -> bytes:
    """Raises ValueError on anything but base64 text."""
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None
