"""sandbox.frames: literal fixtures both ways, three ways of feeding, one documented error."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulmen.errors import SandboxError, SandboxProtocolError
from fulmen.sandbox.frames import FrameDecoder, encode

# (record, wire bytes): each is both encoded and decoded (STYLE.md P9).
FIXTURES: list[tuple[dict[str, Any], bytes]] = [
    ({}, b"\x00\x00\x00\x02{}"),
    ({"event": {"i": 1}}, b'\x00\x00\x00\x11{"event":{"i":1}}'),
    ({"t": "kill", "id": 7}, b'\x00\x00\x00\x13{"t":"kill","id":7}'),
    ({"s": "é\n"}, b'\x00\x00\x00\x0c{"s":"\xc3\xa9\\n"}'),
]


@pytest.mark.parametrize(("record", "wire"), FIXTURES)
def test_encode_gives_the_literal_bytes(record: dict[str, Any], wire: bytes) -> None:
    assert encode(record) == wire


@pytest.mark.parametrize(("record", "wire"), FIXTURES)
def test_decode_whole(record: dict[str, Any], wire: bytes) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(wire) == [record]
    assert decoder.pending == 0
    decoder.close()


@pytest.mark.parametrize(("record", "wire"), FIXTURES)
def test_decode_byte_at_a_time(record: dict[str, Any], wire: bytes) -> None:
    decoder = FrameDecoder()
    records = [r for i in range(len(wire)) for r in decoder.feed(wire[i : i + 1])]
    assert records == [record]


@pytest.mark.parametrize(("record", "wire"), FIXTURES)
def test_decode_leaves_trailing_partial_frame_pending(record: dict[str, Any], wire: bytes) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(wire + wire[:3]) == [record]
    assert decoder.pending == 3
    assert decoder.feed(wire[3:]) == [record]


def test_several_frames_in_one_chunk_come_out_in_order() -> None:
    records = [{"i": i} for i in range(5)]
    assert FrameDecoder().feed(b"".join(encode(r) for r in records)) == records


def test_int_keys_are_written_as_json_would() -> None:
    assert FrameDecoder().feed(encode({"m": {1: "a"}})) == [{"m": {"1": "a"}}]


def test_unencodable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode({"x": object()})


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x00\x00\x00\x03abc", "not valid JSON"),
        (b"\x00\x00\x00\x02\xff\xfe", "not valid JSON"),
        (b"\x00\x00\x00\x00", "not valid JSON"),
        (b"\x00\x00\x00\x02[]", "JSON list, expected an object"),
        (b"\x00\x00\x00\x011", "JSON int, expected an object"),
        (b"\x00\x00\x04\x01", "over the 1024-byte limit"),
    ],
)
def test_bad_frames_raise_the_protocol_error(wire: bytes, message: str) -> None:
    decoder = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(SandboxProtocolError, match=message) as caught:
        decoder.feed(wire)
    assert isinstance(caught.value, SandboxError)
    assert caught.value.code == "sandbox_protocol_error"


def test_a_failed_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(SandboxProtocolError):
        decoder.feed(b"\x00\x00\x00\x01x")
    with pytest.raises(SandboxProtocolError):
        decoder.feed(encode({}))
    with pytest.raises(SandboxProtocolError):
        decoder.close()


def test_stream_ending_inside_a_frame_is_a_protocol_error() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode({"a": 1})[:-1])
    with pytest.raises(SandboxProtocolError, match="ended inside a frame"):
        decoder.close()


# -- properties (STYLE.md P10) ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
records = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


@given(st.binary(max_size=512), st.lists(st.integers(0, 512), max_size=8))
def test_any_bytes_give_records_or_the_protocol_error(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame_bytes=256)
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            for record in decoder.feed(data[start:end]):
                assert isinstance(record, dict)
        decoder.close()
    except SandboxProtocolError:
        pass


@given(st.lists(records, max_size=6), st.lists(st.integers(0, 10_000), max_size=6))
def test_any_records_survive_any_split(items: list[dict[str, Any]], cuts: list[int]) -> None:
    wire = b"".join(encode(r) for r in items)
    bounds = [0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]
    decoder = FrameDecoder()
    out = [r for a, b in itertools.pairwise(bounds) for r in decoder.feed(wire[a:b])]
    decoder.close()
    assert out == items
