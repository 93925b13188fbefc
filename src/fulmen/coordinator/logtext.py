"""A log line's message as stored: the worker's message list joined into one text (§5.9).

Lightning stores ``message`` (a list) as one string: strings as they are, anything else
JSON-encoded, joined with single spaces; characters PostgreSQL text cannot hold (NUL, most C0
controls, DEL) are replaced (§8.4). Tabs and line breaks are kept: stack traces need them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import orjson

from fulmen.contract import JSON

__all__ = ["REPLACEMENT", "join_message"]

REPLACEMENT: Final = "\ufffd"
_UNSTORABLE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def join_message(parts: Iterable[JSON]) -> str:
    text = " ".join(part if isinstance(part, str) else _encode(part) for part in parts)
    return _UNSTORABLE.sub(REPLACEMENT, text)


def _encode(value: JSON) -> str:
    return orjson.dumps(value).decode()
