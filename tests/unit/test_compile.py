"""From a job's source to its steps: which top-level statements become operations."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from fulmen.adaptors import common
from fulmen.adaptors.operation import Operation, run_operation
from fulmen.errors import CompileError
from fulmen.runtime.adaptors import scope
from fulmen.runtime.compile import (
    ASYNC_LIBRARIES,
    StatementError,
    check_syntax,
    compile_job,
    names_any,
)
from fulmen.runtime.frames import job_traceback

SCOPE = scope(common)


def build(source: str) -> list[Operation]:
    return compile_job(textwrap.dedent(source), SCOPE, "job:test")


def run_all(operations: list[Operation], state: dict[str, Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        nonlocal state
        for operation in operations:
            state = await run_operation(operation, state)
        return state

    return asyncio.run(go())


def test_top_level_operations_become_steps_in_order() -> None:
    operations = build(
        """
        fn(lambda s: {**s, "trail": ["one"]})
        fn(lambda s: {**s, "trail": [*s["trail"], "two"]})
        fn(lambda s: {**s, "trail": [*s["trail"], "three"]})
        """
    )
    assert len(operations) == 3
    assert run_all(operations, {})["trail"] == ["one", "two", "three"]


def test_decorated_def_and_async_def_are_steps_in_source_order() -> None:
    operations = build(
        """
        import asyncio

        fn(lambda s: {**s, "trail": ["expr"]})

        @fn
        def plain(state):
            state["trail"].append("def")
            return state

        @fn
        async def later(state):
            await asyncio.sleep(0)
            state["trail"].append("async def")
            return state
        """
    )
    assert [op.name for op in operations] == ["<lambda>", "plain", "later"]
    assert run_all(operations, {})["trail"] == ["expr", "def", "async def"]


def test_assignments_imports_and_helpers_are_not_steps() -> None:
    operations = build(
        """
        import json
        from math import floor
        LIMIT = 3
        op = fn(lambda s: {**s, "never": True})

        def helper(state):
            return state

        async def async_helper(state):
            return state

        class Thing:
            pass

        "a docstring-like string"
        len([1, 2])
        helper
        """
    )
    assert operations == []


def test_helpers_and_names_defined_earlier_are_usable_by_later_steps() -> None:
    operations = build(
        """
        import json
        FACTOR = 10

        def scale(value):
            return value * FACTOR

        fn(lambda s: {**s, "data": {"x": scale(2), "j": json.dumps([1])}})
        """
    )
    assert run_all(operations, {})["data"] == {"x": 20, "j": "[1]"}


def test_an_assigned_operation_becomes_a_step_when_used_as_an_expression() -> None:
    operations = build(
        """
        mark = fn(lambda s: {**s, "n": s.get("n", 0) + 1})
        mark
        mark
        """
    )
    assert len(operations) == 2
    assert run_all(operations, {})["n"] == 2


def test_building_runs_no_operation() -> None:
    calls: list[str] = []
    scope_with_probe = {**SCOPE, "probe": lambda: calls.append("built")}
    operations = compile_job(
        "probe()\nfn(lambda s: calls.append('ran'))\n",
        {**scope_with_probe, "calls": calls},
        "job:test",
    )
    assert calls == ["built"]
    assert len(operations) == 1


def test_a_syntax_error_names_the_line() -> None:
    source = "fn(lambda s: s)\n\nfn(lambda s: s\n"
    with pytest.raises(CompileError) as caught:
        build(source)
    assert caught.value.code == "CompileError"
    assert "SyntaxError at line 3" in caught.value.message


def test_a_syntax_error_is_reported_before_any_top_level_code_runs() -> None:
    calls: list[str] = []
    with pytest.raises(CompileError, match="line 2"):
        compile_job("probe()\nif x\n", {"probe": lambda: calls.append("x")}, "j")
    assert calls == []


def test_check_syntax_alone_names_the_line_and_the_text() -> None:
    with pytest.raises(CompileError) as caught:
        check_syntax("x = 1\ny = (\n", "job:t")
    assert "line 2" in caught.value.message


def test_a_top_level_that_raises_is_the_job_s_runtime_error_not_a_compile_error() -> None:
    """The code parsed: what its top level raises while it runs is the job's own error, with
    its traceback (the engine reports it as an operation's error, naming the line)."""
    with pytest.raises(StatementError) as caught:
        build("fn(lambda s: s)\n\nundefined_thing('x')\n")
    assert isinstance(caught.value.error, NameError)
    with pytest.raises(StatementError) as divided:
        build("x = 1\ny = x / 0\n")
    assert isinstance(divided.value.error, ZeroDivisionError)
    assert job_traceback(divided.value.error, "job:test", "x = 1\ny = x / 0\n") == (
        "Traceback (the job's code):\n  line 2, at top level\n    y = x / 0\n"
        "ZeroDivisionError: division by zero"
    )


def test_a_nul_byte_is_a_compile_error() -> None:
    with pytest.raises(CompileError, match="SyntaxError"):
        build("fn(lambda s: s)\x00\n")


def test_empty_source_has_no_steps() -> None:
    assert build("") == []
    assert build("# only a comment\n") == []


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("import asyncio\nfn(lambda s: s)", True),
        ("import asyncio.subprocess as sp", True),
        ("from anyio import to_thread", True),
        ("from asyncio import gather", True),
        ("fn(lambda s: asyncio.gather())", True),  # a name the adaptor's scope might give
        ("import sys\nfn(lambda s: sys.modules['asyncio'])", False),
        ("fn(lambda s: {**s, 'asyncio': 1})", False),
        ("import asyncpg", False),
        ("fn(lambda s: s)", False),
        # Identifiers are NFKC-normalised: fullwidth letters spell asyncio to the parser.
        ("import \uff41syncio", True),
    ],
)
def test_which_jobs_name_an_async_library(source: str, names: bool) -> None:
    tree = check_syntax(source, "job:x")
    assert names_any(tree, ASYNC_LIBRARIES) is names
    # The same answer when the text is given too (it lets most jobs skip the walk).
    assert names_any(tree, ASYNC_LIBRARIES, source) is names
