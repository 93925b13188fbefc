"""Wrappers that note how a function of the code under test was called, for tests that
assert how work was divided (a bulk deletion's batches, say)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["noting_results"]

P = ParamSpec("P")
R = TypeVar("R")


def noting_results(
    function: Callable[P, Awaitable[R]], results: list[R]
) -> Callable[P, Awaitable[R]]:
    """``function``, appending to ``results`` what each call returned."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await function(*args, **kwargs)
        results.append(result)
        return result

    return call
