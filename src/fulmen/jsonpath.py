"""A small JSONPath subset: ``$.data.items[0].name``, ``data.items[*]``.

Enough for what OpenFn users write in ``each``, ``data_value`` and ``source_value`` (the
adaptors) and in a keychain's path into a run's input (store/keychains.py); full JSONPath
(filters, recursive descent) is deliberately out of scope. One module for both, below the
store and the adaptors, so that a path a keychain accepts reads the same as in a job.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PathError", "check", "find", "first"]

_TOKEN = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+|\*|'[^']*'|\"[^\"]*\")\]")


class PathError(ValueError):
    """The path is not in the supported subset."""


def _tokens(path: str) -> list[str | int]:
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    tokens: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise PathError(f"cannot read the path {path!r} at position {pos}")
        name, index = match.groups()
        if name is not None:
            tokens.append(name)
        elif index == "*":
            tokens.append("*")
        elif index[0] in "'\"":
            tokens.append(index[1:-1])
        else:
            try:
                tokens.append(int(index))
            except ValueError as exc:  # more digits than int() accepts
                raise PathError(f"cannot read the path {path!r} at position {pos}") from exc
        pos = match.end()
    return tokens


def check(path: str) -> None:
    """Raise PathError unless ``path`` is in the supported subset (a save checks it before
    any input reaches it)."""
    _tokens(path)


def find(path: str, obj: Any) -> list[Any]:
    """Every value at ``path`` in ``obj`` (a wildcard can match many; a miss matches none)."""
    current = [obj]
    for token in _tokens(path):
        nxt: list[Any] = []
        for value in current:
            if token == "*":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif isinstance(token, int):
                if isinstance(value, list) and -len(value) <= token < len(value):
                    nxt.append(value[token])
            elif isinstance(value, dict) and token in value:
                nxt.append(value[token])
        current = nxt
    return current


def first(path: str, obj: Any) -> Any:
    """The first value at ``path``, or None."""
    found = find(path, obj)
    return found[0] if found else None
