"""The ``common`` adaptor's operations and helpers, and the JSONPath subset they read."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fulmen.adaptors.common import (
    alter_state,
    as_data,
    combine,
    data_path,
    data_value,
    each,
    field,
    fields,
    fn,
    fn_if,
    last_reference_value,
    log,
    merge,
    source_value,
)
from fulmen.adaptors.operation import Operation, expand, run_operation
from fulmen.jsonpath import PathError, find, first


def run(operation: Operation, state: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(run_operation(operation, state))


def append(value: Any) -> Operation:
    return fn(lambda s: {**s, "seen": [*s.get("seen", []), value]})


# -- fn, fn_if, combine -----------------------------------------------------------------------


def test_fn_makes_an_operation_of_a_function_and_keeps_its_name() -> None:
    def double(state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "data": state["data"] * 2}

    operation = fn(double)
    assert isinstance(operation, Operation)
    assert operation.name == "double"
    assert run(operation, {"data": 21}) == {"data": 42}
    assert alter_state is fn


def test_fn_of_an_async_function() -> None:
    async def later(state: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {**state, "async": True}

    assert run(fn(later), {}) == {"async": True}


def test_fn_refuses_what_is_not_a_function() -> None:
    with pytest.raises(TypeError, match=r"fn\(\) needs a function of state, got dict"):
        fn({"data": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "runs"),
    [
        (True, True),
        (False, False),
        (0, False),
        ("yes", True),
        (lambda s: s["go"], True),
        (lambda s: not s["go"], False),
        (data_value("flag"), True),
        (source_value("$.missing"), False),
    ],
)
def test_fn_if_runs_the_operation_only_when_the_condition_holds(condition: Any, runs: bool) -> None:
    state = {"go": True, "data": {"flag": 1}}
    result = run(fn_if(condition, append("ran")), state)
    assert result == ({**state, "seen": ["ran"]} if runs else state)


def test_combine_runs_operations_in_order_as_one() -> None:
    operation = combine(append(1), append(2), fn(lambda s: None), append(3))
    assert run(operation, {}) == {"seen": [1, 2, 3]}
    assert run(combine(), {"x": 1}) == {"x": 1}


# -- each -------------------------------------------------------------------------------------


def record_item() -> Operation:
    return fn(lambda s: {**s, "seen": [*s.get("seen", []), (s["index"], s["data"])]})


def test_each_over_a_jsonpath_sets_data_and_index_and_threads_state() -> None:
    state = {"data": {"items": [{"n": 1}, {"n": 2}, {"n": 3}]}}
    result = run(each("$.data.items[*]", record_item()), state)
    assert result["seen"] == [(0, {"n": 1}), (1, {"n": 2}), (2, {"n": 3})]
    assert result["data"] == state["data"]  # restored after the loop
    assert "index" not in result


def test_each_over_a_function_of_state() -> None:
    result = run(each(lambda s: s["rows"], record_item()), {"rows": ["a", "b"]})
    assert result["seen"] == [(0, "a"), (1, "b")]


def test_each_over_a_single_value_or_nothing() -> None:
    assert run(each(lambda s: "one", record_item()), {})["seen"] == [(0, "one")]
    assert run(each(lambda s: None, record_item()), {"x": 1}) == {"x": 1}
    assert run(each("$.data.none[*]", record_item()), {"data": {}}) == {"data": {}}


def test_each_with_an_async_operation() -> None:
    async def visit(state: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {**state, "total": state.get("total", 0) + state["data"]}

    assert run(each("$.data[*]", fn(visit)), {"data": [1, 2, 3]})["total"] == 6


def test_as_data() -> None:
    state = {"data": {"items": [1, 2]}}
    assert as_data("$.data.items[*]", state) == [1, 2]
    assert as_data("$.data.items", state) == [[1, 2]]
    assert as_data(lambda s: s["data"]["items"], state) == [1, 2]
    assert as_data([1, data_value("items[0]")], state) == [1, 1]
    assert as_data(None, state) == []


# -- lazy values: field(s), data_value, source_value, last_reference_value, expand ------------


def test_data_value_reads_inside_data() -> None:
    state = {"data": {"a": {"b": [10, 20]}, "data": "inner"}}
    assert data_value("a.b[1]")(state) == 20
    assert data_value("$.a.b[0]")(state) == 10
    assert data_value("missing")(state) is None
    assert data_path("a.b") == "$.data.a.b"


def test_source_value_reads_from_the_root() -> None:
    state = {"data": {"x": 1}, "references": [{"y": 2}]}
    assert source_value("$.data.x")(state) == 1
    assert source_value("references[0].y")(state) == 2
    assert source_value("$.nope")(state) is None


def test_last_reference_value_reads_the_newest_reference() -> None:
    state = {"references": [{"id": "old"}, {"id": "new"}]}
    assert last_reference_value("$.id")(state) == "new"
    assert last_reference_value("$.id")({"references": []}) is None
    assert last_reference_value("$.id")({}) is None


def test_fields_build_a_dict_whose_values_may_be_lazy() -> None:
    state = {"data": {"name": "Ada", "age": 36}}
    built = fields(field("name", data_value("name")), field("kind", "person"))
    assert field("k", 1) == ("k", 1)
    assert expand(built, state) == {"name": "Ada", "kind": "person"}


def test_expand_resolves_nested_lazy_values_but_not_operations() -> None:
    operation = fn(lambda s: s)
    state = {"data": {"x": 5}}
    value = {"a": [data_value("x"), {"b": lambda s: s["data"]["x"] + 1}], "op": operation, "n": 1}
    assert expand(value, state) == {"a": [5, {"b": 6}], "op": operation, "n": 1}


# -- merge and log ----------------------------------------------------------------------------


def test_merge_adds_values_to_every_object_at_a_path() -> None:
    state = {"data": {"rows": [{"id": 1}, {"id": 2}, "not an object"], "source": "api"}}
    result = run(merge("$.data.rows[*]", fields(field("from", data_value("source")))), state)
    assert result["data"]["rows"] == [
        {"id": 1, "from": "api"},
        {"id": 2, "from": "api"},
        "not an object",
    ]


def test_merged_values_are_copies() -> None:
    shared = {"tags": ["t"]}
    result = run(merge("$.data[*]", {"meta": shared}), {"data": [{}, {}]})
    result["data"][0]["meta"]["tags"].append("changed")
    assert result["data"][1]["meta"] == {"tags": ["t"]}
    assert shared == {"tags": ["t"]}


def test_log_writes_expanded_values_as_the_adaptor_and_keeps_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"data": {"count": 3}}
    with caplog.at_level(logging.INFO, logger="fulmen.adaptors.common"):
        assert run(log("count is", data_value("count"), {"k": 1}), state) == state
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("fulmen.adaptors.common", logging.INFO, "count is 3 {'k': 1}")
    ]


# -- paths --------------------------------------------------------------------------------------


DOC = {
    "data": {
        "items": [{"name": "a", "tags": ["x"]}, {"name": "b", "tags": ["y", "z"]}],
        "odd key": 1,
        "with-dash": 2,
        "_private": 3,
        "dict": {"k1": "v1", "k2": "v2"},
    }
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("$", [DOC]),
        ("", [DOC]),
        ("$.data.items[0].name", ["a"]),
        ("data.items[1].name", ["b"]),
        ("  $.data.items[1].name  ", ["b"]),
        ("$.data.items[2]", []),
        ("$.data.items[*].name", ["a", "b"]),
        ("$.data.items[*].tags[*]", ["x", "y", "z"]),
        ("$.data.dict[*]", ["v1", "v2"]),
        ("$.data['odd key']", [1]),
        ('$.data["odd key"]', [1]),
        ("$.data.with-dash", [2]),
        ("$.data._private", [3]),
        ("$.data['items'][0]['name']", ["a"]),
        ("$.data.missing.deeper", []),
        ("$.data.items.name", []),
        ("$.data.dict[0]", []),
        ("$['data']['dict'].k2", ["v2"]),
    ],
)
def test_find(path: str, found: list[Any]) -> None:
    assert find(path, DOC) == found


def test_first() -> None:
    assert first("$.data.items[*].name", DOC) == "a"
    assert first("$.data.nothing", DOC) is None


@pytest.mark.parametrize(
    "path",
    [
        "$.",
        "$..name",
        "$.data[",
        "$.data[-1]",
        "$.data[?(@.x)]",
        "$.data.items[0:1]",
        "$.1abc",
        "data name",
        "$.data['unclosed]",
        "$.data.*",
    ],
)
def test_a_path_outside_the_subset_is_a_path_error(path: str) -> None:
    with pytest.raises(PathError, match="cannot read the path"):
        find(path, DOC)


def test_a_bad_path_fails_the_step_that_uses_it() -> None:
    with pytest.raises(PathError):
        run(each("$..items", fn(lambda s: s)), DOC)
    with pytest.raises(PathError):
        data_value("items[")(DOC)


@given(st.text())
@example("[" + "9" * 5000 + "]")
@example("$['\x00']")
@example("[٣]")
def test_the_path_parser_raises_nothing_but_path_error(path: str) -> None:
    try:
        result = find(path, DOC)
    except PathError:
        return
    assert isinstance(result, list)


@given(st.from_regex(r"\A(\$)?(\.[a-z_]{1,3}|\[[0-9]{1,2}\]|\[\*\]|\['[a-z ]{0,3}'\]){0,5}\Z"))
def test_every_path_in_the_subset_parses(path: str) -> None:
    assert isinstance(find(path, DOC), list)
