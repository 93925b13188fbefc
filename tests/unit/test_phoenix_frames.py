"""The Phoenix V2 frame codec against recorded frames, hand-built binary frames and fuzzing.

Each recorded frame is one literal that must decode to the expected value and encode back
to exactly the same text (STYLE.md P9); any input must decode or raise RemoteProtocolError
(P10).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulmen.errors import LocalProtocolError, RemoteProtocolError
from fulmen.phoenix.frames import (
    DECODE_ERRORS,
    JSON,
    BinaryBroadcast,
    BinaryPush,
    BinaryReply,
    Message,
    Sender,
    decode_binary,
    decode_text,
    encode_binary,
    encode_text,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix"
TEXT_FIXTURES = sorted(FIXTURES.glob("*.txt"))


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


# -- recorded frames, both directions ------------------------------------------------------


def test_there_are_fixtures_in_both_directions() -> None:
    names = [path.stem for path in TEXT_FIXTURES]
    assert any(name.startswith("w2l-") for name in names)
    assert any(name.startswith("l2w-") for name in names)


@pytest.mark.parametrize("path", TEXT_FIXTURES, ids=lambda p: p.stem)
def test_recorded_frame_decodes_and_encodes_back_byte_for_byte(path: Path) -> None:
    text = path.read_text()
    message = decode_text(text)
    assert [message.join_ref, message.ref, message.topic, message.event, message.payload] == (
        json.loads(text)
    )
    assert encode_text(message) == text
    assert decode_text(text.encode()) == message


def test_recorded_claim() -> None:
    expected = Message(
        "6",
        "10",
        "worker:queue",
        "claim",
        {"demand": 1, "worker_name": None, "queues": ["manual", "*"]},
    )
    text = fixture("w2l-claim")
    assert decode_text(text) == expected
    assert encode_text(expected) == text


def test_recorded_step_complete() -> None:
    expected = Message(
        "13",
        "40",
        "run:smoke-run-1",
        "step:complete",
        {
            "step_id": "20ffe6c2-4afe-497b-89b4-456888f1a2fb",
            "job_id": "j1",
            "mem": {"job": 48336456, "system": 192937984},
            "duration": 307,
            "thread_id": 2,
            "timestamp": "1795358228306496",
            "output_dataclip_id": "5deceea9-821f-4942-89ae-4596af553a05",
            "output_dataclip": '{"data":{"x":42}}',
            "reason": "success",
            "error_type": None,
            "error_message": None,
        },
    )
    text = fixture("w2l-step-complete")
    assert decode_text(text) == expected
    assert encode_text(expected) == text


def test_recorded_mock_quirks_decode_as_they_are() -> None:
    # lightning-mock: chan_reply_<ref> events, a string payload and an empty ref.
    assert decode_text(fixture("l2w-work-available")) == Message(
        None, "", "worker:queue", "work-available", "{}"
    )
    reply = decode_text(fixture("l2w-queue-join-reply"))
    assert reply.event == "chan_reply_6"
    assert reply.payload == {"status": "ok", "response": "ok"}


def test_dataclip_reply_as_lightning_sends_it_binary() -> None:
    data = (FIXTURES / "l2w-dataclip-reply.bin").read_bytes()
    expected = BinaryReply("13", "15", "run:smoke-run-1", "ok", b'{"data":{}}')
    assert decode_binary(data, sender=Sender.SERVER) == expected
    assert encode_binary(expected, sender=Sender.SERVER) == data
    # and it carries the same bytes lightning-mock sent as a JSON array of byte values
    mock = decode_text(fixture("l2w-dataclip-reply"))
    assert isinstance(mock.payload, dict)
    assert bytes(mock.payload["response"]) == expected.response  # type: ignore[arg-type]


# -- binary layouts (spec §1.2) -------------------------------------------------------------

BINARY_CASES = [
    (
        Sender.CLIENT,
        BinaryPush("1", "2", "t", "ev", b"\x00\xff"),
        b"\x00\x01\x01\x01\x02" + b"12tev" + b"\x00\xff",
    ),
    (Sender.SERVER, BinaryPush("1", "", "t", "ev", b"xy"), b"\x00\x01\x01\x02" + b"1tev" + b"xy"),
    (
        Sender.SERVER,
        BinaryReply("", "9", "run:a", "error", b"null"),
        b"\x01\x00\x01\x05\x05" + b"9run:aerror" + b"null",
    ),
    (Sender.SERVER, BinaryBroadcast("t", "e", b""), b"\x02\x01\x01" + b"te"),
]


@pytest.mark.parametrize(("sender", "frame", "data"), BINARY_CASES)
def test_binary_layouts(sender: Sender, frame: BinaryPush, data: bytes) -> None:
    assert encode_binary(frame, sender=sender) == data
    assert decode_binary(data, sender=sender) == frame


def test_binary_lengths_count_utf8_bytes() -> None:
    frame = BinaryReply("", "1", "run:é", "ok", b"{}")
    data = encode_binary(frame, sender=Sender.SERVER)
    assert data[3] == len("run:é".encode())
    assert decode_binary(data, sender=Sender.SERVER) == frame


@pytest.mark.parametrize(
    ("frame", "sender", "code"),
    [
        (BinaryReply("", "1", "t", "ok", b""), Sender.CLIENT, "wrong_sender"),
        (BinaryBroadcast("t", "e", b""), Sender.CLIENT, "wrong_sender"),
        (BinaryPush("", "1", "t", "e", b""), Sender.SERVER, "wrong_sender"),
        (BinaryPush("", "1", "t" * 256, "e", b""), Sender.CLIENT, "field_too_long"),
    ],
)
def test_binary_encoding_refuses_what_the_sender_cannot_send(
    frame: BinaryPush, sender: Sender, code: str
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_binary(frame, sender=sender)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("data", "sender", "code"),
    [
        (b"", Sender.SERVER, "truncated"),
        (b"\x01\x01", Sender.SERVER, "truncated"),
        (b"\x01\x05\x00\x00\x00ab", Sender.SERVER, "truncated"),
        (b"\x01\x00\x01\x00\x00", Sender.SERVER, "truncated"),
        (b"\x01\x00\x00\x00\x00", Sender.CLIENT, "unknown_kind"),
        (b"\x02\x00\x00", Sender.CLIENT, "unknown_kind"),
        (b"\x07\x00\x00", Sender.SERVER, "unknown_kind"),
        (b"\x02\x01\x00\xff", Sender.SERVER, "bad_utf8"),
        (bytearray(b"\x02\x00\x00"), Sender.SERVER, "not_binary"),
        ("\x02\x00\x00", Sender.SERVER, "not_binary"),
    ],
)
def test_bad_binary_frames(data: bytes, sender: Sender, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_binary(data, sender=sender)
    assert info.value.code == code


# -- bad text frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("", "invalid_json"),
        ('[null,null,"t","e",{}] trailing', "invalid_json"),
        ('[null,"1","t","e",NaN]', "invalid_json"),
        ('[null,"1","t","e",1e400]', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("[" * 5000 + "]" * 5000, "invalid_json"),
        ('{"topic":"t"}', "not_array"),
        ('"[]"', "not_array"),
        ('[null,"1","t","e"]', "wrong_length"),
        ('[null,"1","t","e",{},{}]', "wrong_length"),
        ('[1,"1","t","e",{}]', "bad_field"),
        ('[null,2,"t","e",{}]', "bad_field"),
        ('[null,"1",null,"e",{}]', "bad_field"),
        ('[null,"1","t",["e"],{}]', "bad_field"),
        (None, "not_text"),
        (42, "not_text"),
    ],
)
def test_bad_text_frames(data: str | bytes, code: str) -> None:
    assert code in DECODE_ERRORS
    with pytest.raises(RemoteProtocolError) as info:
        decode_text(data)
    assert info.value.code == code


def test_lone_surrogate_escapes_from_javascript_are_accepted() -> None:
    # JSON.stringify("\ud800") is the 8 characters "\ud800"; orjson alone refuses it.
    message = decode_text('[null,"1","t","e",{"m":"a\\ud800b"}]')
    assert message.payload == {"m": "a\ud800b"}
    assert decode_text(encode_text(message)) == message


def test_integers_beyond_64_bits_survive_a_round_trip() -> None:
    message = Message(None, "1", "t", "e", {"n": 2**80 + 1})
    assert decode_text(encode_text(message)).payload == {"n": float(2**80 + 1)}


def test_unencodable_payload_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_text(Message(None, "1", "t", "e", {"s": {1, 2}}))  # type: ignore[dict-item]
    assert info.value.code == "unencodable"


# -- properties ------------------------------------------------------------------------------

json_values: st.SearchStrategy[JSON] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
refs = st.none() | st.text(max_size=6)


@given(st.text())
def test_any_text_decodes_or_raises_remote_protocol_error(data: str) -> None:
    try:
        decode_text(data)
    except RemoteProtocolError as error:
        assert error.code in DECODE_ERRORS


@given(st.binary())
def test_any_bytes_as_text_decode_or_raise_remote_protocol_error(data: bytes) -> None:
    try:
        decode_text(data)
    except RemoteProtocolError as error:
        assert error.code in DECODE_ERRORS


@given(st.lists(json_values, max_size=7).map(json.dumps))
def test_any_json_array_decodes_or_raises_remote_protocol_error(data: str) -> None:
    try:
        decode_text(data)
    except RemoteProtocolError as error:
        assert error.code in DECODE_ERRORS


@given(st.binary(), st.sampled_from(Sender))
def test_any_bytes_as_binary_decode_or_raise_remote_protocol_error(
    data: bytes, sender: Sender
) -> None:
    try:
        decode_binary(data, sender=sender)
    except RemoteProtocolError as error:
        assert error.code in DECODE_ERRORS


@given(refs, refs, st.text(), st.text(), json_values)
def test_text_round_trip(
    join_ref: str | None, ref: str | None, topic: str, event: str, payload: JSON
) -> None:
    message = Message(join_ref, ref, topic, event, payload)
    assert decode_text(encode_text(message)) == message


short = st.text(max_size=20).filter(lambda s: len(s.encode()) <= 255)


@given(short, short, short, short, st.binary())
def test_binary_round_trip(a: str, b: str, c: str, d: str, payload: bytes) -> None:
    frames: list[tuple[Sender, BinaryPush | BinaryReply | BinaryBroadcast]] = [
        (Sender.CLIENT, BinaryPush(a, b, c, d, payload)),
        (Sender.SERVER, BinaryPush(a, "", c, d, payload)),
        (Sender.SERVER, BinaryReply(a, b, c, d, payload)),
        (Sender.SERVER, BinaryBroadcast(c, d, payload)),
    ]
    for sender, frame in frames:
        assert decode_binary(encode_binary(frame, sender=sender), sender=sender) == frame
