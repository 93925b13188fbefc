"""Edge conditions: ``always``, ``on_job_success``, ``on_job_failure`` or a Python expression.

An expression sees ``state`` (the upstream step's output) and ``upstream_step_id``. ``state`` is
a read-only view that allows both ``state["data"]["x"]`` and ``state.data.x`` (a missing key
reads as ``None``), and ``true``/``false``/``null``/``undefined`` are bound, so the simplest
Lightning conditions (``state.data.count > 0``, ``!state.errors`` excepted) read the same in
both languages. JavaScript operators (``&&``, ``||``, ``!``, ``===``) are not translated: a
condition that uses them fails to compile with a clear ``EdgeConditionError``.

All conditions of a plan are compiled before the first step runs, so a typo crashes the run
at once instead of after an hour of work.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fulmen.errors import EdgeConditionError
from fulmen.plan import ALWAYS, ON_JOB_FAILURE, ON_JOB_SUCCESS

__all__ = ["Condition", "compile_condition"]

#: (state, upstream job id) -> follow the edge?
Condition = Callable[[Mapping[str, Any], str | None], bool]

_CONSTANTS = {"true": True, "false": False, "null": None, "undefined": None}


def _has_error(state: Mapping[str, Any], upstream: str | None) -> bool:
    errors = state.get("errors")
    return bool(upstream and isinstance(errors, Mapping) and upstream in errors)


def compile_condition(text: str, edge_id: str) -> Condition:
    """Compile one edge condition; EdgeConditionError names the edge when it cannot."""
    expression = text.strip()
    if expression in ("", ALWAYS, "true"):
        return lambda state, upstream: True
    if expression in (ON_JOB_SUCCESS, "on_upstream_success"):
        return lambda state, upstream: not _has_error(state, upstream)
    if expression in (ON_JOB_FAILURE, "on_upstream_fail"):
        return _has_error
    try:
        code = compile(expression, f"<edge {edge_id}>", "eval")
    except SyntaxError as exc:
        raise EdgeConditionError(
            f"edge {edge_id}: the condition {expression!r} is not a Python expression ({exc.msg})"
        ) from exc

    def evaluate(state: Mapping[str, Any], upstream: str | None) -> bool:
        scope = {**_CONSTANTS, "state": View(state), "upstream_step_id": upstream}
        try:
            return bool(eval(code, {"__builtins__": _SAFE_BUILTINS}, scope))
        except Exception as exc:
            raise EdgeConditionError(
                f"edge {edge_id}: the condition {expression!r} raised {type(exc).__name__}: {exc}"
            ) from exc

    return evaluate


class View:
    """Read-only access to JSON-like state by key or by attribute."""

    __slots__ = ("_value",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        self._value = value

    def __getattr__(self, name: str) -> Any:
        return _wrap(self._value.get(name))

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._value.get(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._value)

    def __contains__(self, key: object) -> bool:
        return key in self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return self._value == (other._value if isinstance(other, View) else other)

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: str, default: Any = None) -> Any:
        return _wrap(self._value.get(key, default))

    def keys(self) -> Any:
        return self._value.keys()


def _wrap(value: Any) -> Any:
    return View(value) if isinstance(value, Mapping) else value


_SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
    )
}
