"""Edge conditions: the named ones, and Python expressions over ``state``."""

from __future__ import annotations

from typing import Any

import pytest

from fulmen.errors import EdgeConditionError
from fulmen.runtime.conditions import compile_condition

FAILED = {"data": {}, "errors": {"up": {"name": "ValueError", "message": "no"}}}
OK = {"data": {"x": 2, "items": [1, 2, 3], "nested": {"deep": "yes"}}}


def holds(condition: str, state: dict[str, Any], upstream: str | None = "up") -> bool:
    return compile_condition(condition, "e-1")(state, upstream)


@pytest.mark.parametrize("condition", ["always", "", "  always ", "true"])
def test_always_holds(condition: str) -> None:
    assert holds(condition, OK)
    assert holds(condition, FAILED)


@pytest.mark.parametrize("condition", ["on_job_success", "on_upstream_success"])
def test_on_success_follows_only_when_upstream_has_no_error(condition: str) -> None:
    assert holds(condition, OK)
    assert not holds(condition, FAILED)
    # Another job's error does not count against this upstream.
    assert holds(condition, FAILED, upstream="other")


@pytest.mark.parametrize("condition", ["on_job_failure", "on_upstream_fail"])
def test_on_failure_follows_only_when_upstream_has_an_error(condition: str) -> None:
    assert holds(condition, FAILED)
    assert not holds(condition, OK)
    assert not holds(condition, FAILED, upstream="other")
    assert not holds(condition, {"errors": "not a mapping"})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("state.data.x > 1", True),
        ("state.data.x > 2", False),
        ('state["data"]["x"] > 1', True),
        ('state["data"]["x"] == 3', False),
        ("state.data.nested.deep == 'yes'", True),
        ("len(state.data.items) == 3", True),
        ("state.data.items[0] == 1", True),
        ("'x' in state.data", True),
        ("'y' in state.data", False),
        ("state.data.get('x') == 2", True),
        ("state.data == {'x': 2, 'items': [1, 2, 3], 'nested': {'deep': 'yes'}}", True),
        ("state.data.x > 1 and sum(state.data.items) == 6", True),
        ("not state.errors", True),
    ],
)
def test_python_expression_over_state(condition: str, expected: bool) -> None:
    assert holds(condition, OK) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("state.data.missing == null", True),
        ("state.data.missing == undefined", True),
        ("state.nothing == null", True),
        ('state["data"]["missing"] == null', True),
        ('state["nothing"] is None', True),
        ("state.data.missing", False),
    ],
)
def test_a_missing_key_reads_as_none_by_attribute_or_key(condition: str, expected: bool) -> None:
    assert holds(condition, OK) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [("true", True), ("false", False), ("null", False), ("undefined", False)],
)
def test_javascript_constant_names_are_bound(condition: str, expected: bool) -> None:
    assert holds(condition, OK) is expected


def test_upstream_step_id_is_bound() -> None:
    assert holds("upstream_step_id == 'up'", OK)
    assert not holds("upstream_step_id == 'up'", OK, upstream="other")


def test_iterating_over_state_yields_its_keys() -> None:
    assert holds("sorted(state.data) == ['items', 'nested', 'x']", OK)
    assert holds("list(state) == ['data']", OK)


@pytest.mark.parametrize(
    "condition",
    ["state.data.x > 1 && true", "!state.errors", "state.data.x === 2", "state.data.x >"],
)
def test_javascript_syntax_does_not_compile(condition: str) -> None:
    with pytest.raises(EdgeConditionError) as caught:
        compile_condition(condition, "e-7")
    assert caught.value.code == "EdgeConditionError"
    assert caught.value.message.startswith(f"edge e-7: the condition {condition!r} is not a Python")


def test_a_nul_byte_does_not_compile() -> None:
    with pytest.raises(EdgeConditionError, match="edge e-1"):
        compile_condition("state\x00", "e-1")


@pytest.mark.parametrize(
    ("condition", "raised"),
    [
        ("state.data.x > 'a'", "TypeError"),
        ("state.data.items[10] == 1", "IndexError"),
        ("1 / 0", "ZeroDivisionError"),
        ("open('/etc/passwd')", "NameError"),
        ("__import__('os')", "NameError"),
    ],
)
def test_a_condition_that_raises_is_an_edge_condition_error(condition: str, raised: str) -> None:
    evaluate = compile_condition(condition, "e-3")
    with pytest.raises(EdgeConditionError) as caught:
        evaluate(OK, "up")
    assert caught.value.message.startswith(f"edge e-3: the condition {condition!r} raised {raised}")


def test_state_cannot_be_changed_by_a_condition() -> None:
    state = {"data": {"x": 1}}
    with pytest.raises(EdgeConditionError):
        holds("state.data.__setitem__('x', 2)", state)
    with pytest.raises(EdgeConditionError):
        holds("setattr(state, 'data', 1)", state)
    assert state == {"data": {"x": 1}}
