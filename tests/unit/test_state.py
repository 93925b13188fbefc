"""State into and out of a step: assembling the input, cleaning and serialising the output."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest

from fulmen.runtime.state import REMOVED_KEYS, assemble, clean_output, dumps
from fulmen.scrub import Scrubber


def test_incoming_state_alone_gets_data_and_configuration() -> None:
    assert assemble(None, {}, None) == {"data": {}, "configuration": {}}
    assert assemble(None, {"data": [1], "x": 1}, None) == {
        "data": [1],
        "x": 1,
        "configuration": {},
    }


def test_default_state_is_overlaid_by_the_input() -> None:
    default = {"data": {"a": 1, "b": 1}, "references": ["d"], "only_default": 1}
    incoming = {"data": {"b": 2}, "references": ["i"], "errors": {"x": {}}}
    assert assemble(default, incoming, None) == {
        "data": {"a": 1, "b": 2},
        "references": ["i"],
        "only_default": 1,
        "errors": {"x": {}},
        "configuration": {},
    }


@pytest.mark.parametrize(
    ("default_data", "incoming", "expected"),
    [
        ({"a": 1}, {"data": [1]}, [1]),
        ({"a": 1}, {"data": "text"}, "text"),
        ([1], {"data": {"b": 2}}, {"b": 2}),
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, {"data": None}, None),
    ],
)
def test_data_is_merged_only_when_both_are_objects(
    default_data: Any, incoming: dict[str, Any], expected: Any
) -> None:
    assert assemble({"data": default_data}, incoming, None)["data"] == expected


def test_configuration_is_the_input_configuration_overlaid_by_the_credential() -> None:
    state = assemble(
        {"configuration": {"from_default": 1}},
        {"configuration": {"base_url": "http://in", "username": "in"}},
        {"username": "cred", "password": "pw"},
    )
    assert state["configuration"] == {"base_url": "http://in", "username": "cred", "password": "pw"}


def test_assemble_does_not_change_its_arguments() -> None:
    default = {"data": {"a": 1}}
    incoming = {"data": {"b": 2}, "configuration": {"x": 1}}
    credential = {"password": "pw"}
    assemble(default, incoming, credential)
    assert default == {"data": {"a": 1}}
    assert incoming == {"data": {"b": 2}, "configuration": {"x": 1}}
    assert credential == {"password": "pw"}


def test_output_drops_configuration_and_response() -> None:
    assert REMOVED_KEYS == ("configuration", "response")
    state = {"data": {"x": 1}, "configuration": {"password": "pw"}, "response": {"status": 200}}
    assert json.loads(clean_output(state, Scrubber([]))) == {"data": {"x": 1}}
    assert "configuration" in state  # the state itself is left as it was


def test_output_masks_credential_values() -> None:
    scrubber = Scrubber([{"password": "hunter2-long"}])
    state = {"data": {"copy": "hunter2-long", "hunter2-long": "as a key"}}
    assert json.loads(clean_output(state, scrubber)) == {"data": {"copy": "***", "***": "as a key"}}


def test_output_is_compact_unicode_json() -> None:
    assert clean_output({"data": {"name": "Zoë", "n": [1, 2]}}, Scrubber([])) == (
        '{"data":{"name":"Zoë","n":[1,2]}}'
    )


class Thing:
    def __repr__(self) -> str:
        return "<thing 1>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2026, 3, 4, 5, 6, 7, 890000), "2026-03-04T05:06:07.890000"),
        (dt.datetime(2026, 3, 4, tzinfo=dt.UTC), "2026-03-04T00:00:00+00:00"),
        (dt.date(2026, 3, 4), "2026-03-04"),
        (dt.time(23, 59), "23:59:00"),
        (b"\x00\x01\xff", [0, 1, 255]),
        (bytearray(b"AB"), [65, 66]),
        (memoryview(b"C"), [67]),
        ({3}, [3]),
        (frozenset({"x"}), ["x"]),
        ((1, "two"), [1, "two"]),
        (decimal.Decimal("10"), 10),
        (decimal.Decimal("10.00"), 10),
        (decimal.Decimal("2.5"), 2.5),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (Thing(), "<thing 1>"),
        ([{"nested": {dt.date(2026, 1, 1)}}], [{"nested": ["2026-01-01"]}]),
    ],
)
def test_values_json_cannot_hold_are_converted(value: Any, expected: Any) -> None:
    assert json.loads(dumps({"v": value})) == {"v": expected}


def test_converted_values_are_also_scrubbed() -> None:
    scrubber = Scrubber([{"password": "hunter2-long"}])
    output = clean_output({"data": {"t": ("hunter2-long",)}}, scrubber)
    assert json.loads(output) == {"data": {"t": ["***"]}}
