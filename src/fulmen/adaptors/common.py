"""The ``common`` adaptor: the helpers an OpenFn user reaches for first, in Python.

Every name in ``__all__`` is in scope in a job that uses this adaptor (and in every adaptor
that re-exports it, such as ``http``). Functions here *build* operations; nothing touches state
until the runtime runs them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fulmen.adaptors.operation import Operation, OperationFunc, State, expand, run_operation
from fulmen.jsonpath import find, first

__all__ = [
    "alter_state",
    "as_data",
    "combine",
    "data_path",
    "data_value",
    "each",
    "expand",
    "field",
    "fields",
    "fn",
    "fn_if",
    "last_reference_value",
    "log",
    "merge",
    "source_value",
]

logger = logging.getLogger(__name__)


def fn(func: OperationFunc) -> Operation:
    """Make a function of state an operation; use as ``@fn`` or ``fn(lambda state: ...)``."""
    if not callable(func):
        raise TypeError(f"fn() needs a function of state, got {type(func).__name__}")
    return Operation(func)


alter_state = fn


def fn_if(condition: Any, operation: Operation) -> Operation:
    """Run ``operation`` only when ``condition`` (a value or a function of state) is truthy."""

    async def run(state: State) -> State | None:
        if expand(condition, state):
            return await run_operation(operation, state)
        return state

    return Operation(run, name=f"fn_if({operation.name})")


def combine(*operations: Operation) -> Operation:
    """Run several operations as one, in order."""

    async def run(state: State) -> State | None:
        for operation in operations:
            state = await run_operation(operation, state)
        return state

    return Operation(run, name="combine")


def each(path: str | Callable[[State], Any], operation: Operation) -> Operation:
    """Run ``operation`` once per item at ``path``, with the item as ``state["data"]``.

    State flows from one item to the next and each call also sees ``state["index"]``, as in
    OpenFn. Afterwards ``data`` is what it was before the loop and ``index`` is gone: ``each``
    is for work per item (and what it adds to state), and a job's next step should not find
    the last item where its data was. Older OpenFn versions left the last item there.
    """

    async def run(state: State) -> State | None:
        original = state.get("data")
        items = as_data(path, state)
        for index, item in enumerate(items):
            state = await run_operation(operation, {**state, "data": item, "index": index})
        if not items:
            return state
        state = {k: v for k, v in state.items() if k != "index"}
        state["data"] = original
        return state

    return Operation(run, name=f"each({operation.name})")


def as_data(path: Any, state: State) -> list[Any]:
    """The items a path (JSONPath string), a function of state or a value stands for."""
    if isinstance(path, str):
        return find(path, state)
    value = expand(path, state)
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def data_path(path: str) -> str:
    """A JSONPath into ``state["data"]``: ``data_path("a.b")`` is ``"$.data.a.b"``."""
    return "$.data." + path.lstrip("$.")


def data_value(path: str) -> Callable[[State], Any]:
    """A lazy value: the first match of ``path`` inside ``state["data"]``."""
    return lambda state: first(data_path(path), state)


def source_value(path: str) -> Callable[[State], Any]:
    """A lazy value: the first match of a JSONPath from the root of state."""
    return lambda state: first(path, state)


def last_reference_value(path: str) -> Callable[[State], Any]:
    """A lazy value from the most recent entry of ``state["references"]``."""

    def value(state: State) -> Any:
        references = state.get("references") or []
        return first(path, references[-1]) if references else None

    return value


def field(key: str, value: Any) -> tuple[str, Any]:
    """One key/value pair for ``fields``."""
    return (key, value)


def fields(*pairs: tuple[str, Any]) -> dict[str, Any]:
    """A dict from ``field`` pairs (values may be lazy; they are expanded when used)."""
    return dict(pairs)


def merge(path: str, values: Mapping[str, Any]) -> Operation:
    """Merge ``values`` (expanded against state) into every object at ``path``."""

    def run(state: State) -> State:
        extra = expand(values, state)
        for target in find(path, state):
            if isinstance(target, dict):
                target.update(copy.deepcopy(extra))
        return state

    return Operation(run, name="merge")


def log(*args: Any) -> Operation:
    """Log values (expanded against state) as the adaptor; state passes through."""

    def run(state: State) -> State:
        logger.info(" ".join(str(a) for a in expand(list(args), state)))
        return state

    return Operation(run, name="log")
