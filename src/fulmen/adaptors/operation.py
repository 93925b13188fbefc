"""The Operation type: what a top-level expression of a job must evaluate to to become a step.

A job's source is evaluated once to *build* operations; the runtime then *runs* them in order,
threading state. Keeping "build" and "run" apart is what lets ``get("/x")`` at the top level of a
job be a step rather than an immediate HTTP call, as in OpenFn's JavaScript jobs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

State: TypeAlias = dict[str, Any]
#: An operation's function: state in, state (or None: keep the state) out; may be async.
OperationFunc: TypeAlias = Callable[[State], "State | Awaitable[State | None] | None"]

__all__ = [
    "Operation",
    "OperationFunc",
    "State",
    "expand",
    "resolve_result",
    "run_operation",
    "settle",
]


class Operation:
    """A deferred step: a function of state, named for logs."""

    __slots__ = ("func", "name")

    def __init__(self, func: OperationFunc, name: str | None = None) -> None:
        self.func = func
        self.name = name or getattr(func, "__name__", "operation")

    def __call__(self, state: State) -> State | Awaitable[State | None] | None:
        return self.func(state)

    def __repr__(self) -> str:
        return f"<operation {self.name}>"


async def resolve_result(result: object) -> object:
    """Await ``result`` while it is awaitable (an async operation may return another one)."""
    while inspect.isawaitable(result):
        result = await result
    return result


async def run_operation(operation: Operation, state: State) -> State:
    """Run one operation on state and return the next state.

    Returning ``None`` keeps the state: Python functions that mutate ``state`` in place and
    forget ``return state`` are common, and passing the same object on is what they meant.
    Anything but a dict or None is a mistake the user should see.
    """
    return settle(operation, state, await resolve_result(operation(state)))


def settle(operation: Operation, state: State, result: object) -> State:
    """The next state from what ``operation`` returned (awaited already), as
    :func:`run_operation` has it: ``None`` keeps ``state``, anything but a dict is an error."""
    if result is None:
        return state
    if not isinstance(result, dict):
        raise TypeError(
            f"operation {operation.name} returned {type(result).__name__}; "
            "an operation must return the state dict (or None to keep it)"
        )
    return result


def expand(value: Any, state: State) -> Any:
    """Resolve lazy arguments against state, as OpenFn's ``expandReferences`` does.

    A callable argument (``data_value("x")``, ``lambda s: ...``) is called with the state;
    lists and dicts are expanded item by item; anything else is returned unchanged.
    """
    if isinstance(value, Operation):
        return value
    if callable(value):
        return value(state)
    if isinstance(value, Mapping):
        return {k: expand(v, state) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expand(v, state) for v in value]
    return value
