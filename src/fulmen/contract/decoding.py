"""Typed decoding of wire payloads, and the contract's errors for what does not fit.

Every payload type of the contract is a ``msgspec.Struct``: :func:`decode` hands the JSON value
to ``msgspec.convert``, which checks types, required fields and simple bounds in one pass in C
(a 20-line ``run:batch_logs`` cost about 22 µs a line with the hand-written reader this
replaced, under 1 µs now; see ``bench/codec.py``). What a type cannot say is checked by the
channel modules after it: a timestamp's digits, the entries of the ``queues`` and ``versions``
maps, ``lost`` as a reason.

msgspec reports a misfit as ``ValidationError("Expected `int`, got `str` - at `$.demand`")``.
:func:`decode` turns that into the :class:`~fulmen.errors.ContractFieldError` the contract has
always raised, with the same ``field`` path, ``code`` and message: it reads the path, looks up
the offending value in the payload (msgspec names JSON's types, we name Python's) and words the
problem as before. When several fields are wrong, the one named may not be the one the old
reader named: msgspec checks the fields present in the payload's key order, then looks for
missing ones, and the checks after it come last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Final, TypeVar

import msgspec

from fulmen.contract.vocabulary import JSON, WIRE_REASONS, LogLevel
from fulmen.errors import ContractFieldError

__all__ = [
    "TIMESTAMP_PROBLEM",
    "bad",
    "check_timestamp",
    "decode",
    "format_timestamp",
    "is_timestamp",
    "missing",
    "not_one_of",
    "parse_timestamp",
    "wrong",
]

T = TypeVar("T")

TIMESTAMP_PROBLEM: Final = "must be a string of 13 (ms) or 16 (µs) digits"

#: The values a field of each name may take, for the message that lists them. Each of these
#: names means one vocabulary wherever it appears in the contract.
_CHOICES: Final[dict[str, tuple[StrEnum, ...]]] = {
    "level": tuple(LogLevel),
    "reason": WIRE_REASONS,
}

#: How our messages name the types msgspec names (without its ``| null``).
_TYPE_WORDS: Final = {
    "int": "an integer",
    "str": "a string",
    "int | float": "a number",
    "object": "a JSON object",
    "array": "an array",
}

_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING: Final = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_EXPECTED: Final = re.compile(r"Expected `(?P<type>[^`]+)`, got `[^`]+`")
_AT_LEAST: Final = re.compile(r"Expected `int` >= (?P<n>-?\d+)")
_AT_MOST_CHARS: Final = re.compile(r"Expected `str` of length <= (?P<n>\d+)")
_NOT_EMPTY: Final = "Expected `array` of length >= 1"


def decode(value: JSON, kind: type[T]) -> T:
    """``value`` as a ``kind``, a Struct of the contract.

    Raises:
        ContractFieldError: ``missing_field``, ``wrong_type`` or ``bad_value``, naming the
            field's path (``""`` for the payload itself).
    """
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        error = exc
    lenient = _ms_timestamps(value)
    if lenient is not value:
        try:
            return msgspec.convert(lenient, kind)
        except msgspec.ValidationError as exc:
            error, value = exc, lenient
    raise _refusal(str(error), value) from error


def _ms_timestamps(payload: JSON) -> JSON:
    """``payload`` with each integer timestamp as the 13-digit string Lightning reads it as
    (milliseconds), or ``payload`` itself when it has none. No worker we know sends one, so
    rather than typing every timestamp ``str | int``, a payload that failed is tried again."""
    if not isinstance(payload, dict):
        return payload
    out = payload
    if _is_ms(payload.get("timestamp")):
        out = {**payload, "timestamp": str(payload["timestamp"]).zfill(13)}
    logs = payload.get("logs")
    if isinstance(logs, list) and any(_has_ms(line) for line in logs):
        lines: list[JSON] = [
            {**line, "timestamp": str(line["timestamp"]).zfill(13)}
            if isinstance(line, dict) and _has_ms(line)
            else line
            for line in logs
        ]
        out = {**out, "logs": lines}
    return out


def _has_ms(line: JSON) -> bool:
    return isinstance(line, dict) and _is_ms(line.get("timestamp"))


def _is_ms(value: JSON) -> bool:
    return type(value) is int and 0 <= value < 10**13


def _refusal(text: str, payload: JSON) -> ContractFieldError:
    """The contract's error for msgspec's ``text`` about ``payload``."""
    problem, _, at = text.rpartition(" - at `$")
    if not problem:  # no path: the payload itself
        problem, at = text, ""
    segments: list[str | int] = [
        name or int(index) for name, index in _SEGMENT.findall(at.removesuffix("`"))
    ]
    if found := _MISSING.fullmatch(problem):
        return missing(_path([*segments, found["name"]]))
    path = _path(segments)
    value = _lookup(payload, segments)
    leaf = segments[-1] if segments and isinstance(segments[-1], str) else None
    if value is None and leaf is not None:
        return missing(path)
    if leaf == "timestamp":
        return bad(path, TIMESTAMP_PROBLEM)
    if found := _EXPECTED.fullmatch(problem):
        kind = found["type"].removesuffix(" | null")
        return wrong(path, _TYPE_WORDS.get(kind, f"of type {kind}"), value)
    if problem.startswith("Invalid enum value") and leaf in _CHOICES:
        return not_one_of(path, _CHOICES[leaf], value)
    if found := _AT_LEAST.fullmatch(problem):
        return bad(path, f"must be at least {found['n']}")
    if found := _AT_MOST_CHARS.fullmatch(problem):
        return bad(path, f"must be at most {found['n']} characters")
    if problem == _NOT_EMPTY:
        return bad(path, "must not be empty")
    return bad(path, f"is not valid: {problem}")  # a constraint this module does not word yet


def _path(segments: Iterable[str | int]) -> str:
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        else:
            out = f"{out}.{segment}" if out else segment
    return out


def _lookup(value: JSON, segments: list[str | int]) -> JSON:
    """The value at ``segments`` in ``value``; ``None`` where the path leads nowhere."""
    for segment in segments:
        if isinstance(segment, int) and isinstance(value, list) and segment < len(value):
            value = value[segment]
        elif isinstance(segment, str) and isinstance(value, dict):
            value = value.get(segment)
        else:
            return None
    return value


def missing(path: str) -> ContractFieldError:
    return ContractFieldError(f"{path} is missing", field=path, code="missing_field")


def wrong(path: str, expected: str, value: object) -> ContractFieldError:
    got = "null" if value is None else type(value).__name__
    where = path or "the payload"
    return ContractFieldError(
        f"{where} must be {expected}, not {got}", field=path, code="wrong_type"
    )


def bad(path: str, problem: str) -> ContractFieldError:
    return ContractFieldError(f"{path} {problem}", field=path, code="bad_value")


def not_one_of(path: str, choices: Iterable[StrEnum], value: object) -> ContractFieldError:
    listed = ", ".join(choice.value for choice in choices)
    return bad(path, f"must be one of {listed}, not {value!r}")


# -- timestamps (§8.3) -------------------------------------------------------------------------


def is_timestamp(text: str) -> bool:
    """Whether a decoded timestamp is 13 (ms) or 16 (µs) ASCII digits."""
    return (len(text) == 16 or len(text) == 13) and text.isascii() and text.isdigit()


def check_timestamp(value: str | None, path: str) -> None:
    """Refuse an optional timestamp that is there and not :func:`is_timestamp`.

    Raises:
        ContractFieldError: ``bad_value``.
    """
    if value is not None and not is_timestamp(value):
        raise bad(path, TIMESTAMP_PROBLEM)


def parse_timestamp(value: str) -> int:
    """Microseconds since the epoch from a wire timestamp (13-digit ms or 16-digit µs); an
    integer is taken as milliseconds, as Lightning reads it.

    Raises:
        ContractFieldError: ``bad_value`` for anything else.
    """
    text: object = str(value).zfill(13) if _is_ms(value) else value
    if not isinstance(text, str):
        raise bad("timestamp", TIMESTAMP_PROBLEM)
    check_timestamp(text, "timestamp")
    return int(text) * (1000 if len(text) == 13 else 1)


def format_timestamp(microseconds: int) -> str:
    """The 16-digit µs string ws-worker sends (§8.3); never send µs as an integer."""
    return str(microseconds).zfill(16)
