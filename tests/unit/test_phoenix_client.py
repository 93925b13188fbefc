"""ClientSession: channel states, ref matching, timeouts and heartbeats as data, and a replay
of the recorded ws-worker ↔ lightning-mock conversation (with the mock's quirks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulmen.errors import LocalProtocolError, RemoteProtocolError
from fulmen.phoenix.client import (
    TRANSITIONS,
    ChannelClosed,
    ClientChannelState,
    ClientEvent,
    ClientSession,
    HeartbeatTimeout,
    NoReply,
    NoReplyReason,
    Push,
    Reply,
)
from fulmen.phoenix.frames import (
    DECODE_ERRORS,
    BinaryReply,
    Message,
    Sender,
    decode_text,
    encode_binary,
    encode_text,
)

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix" / "capture.jsonl"
QUEUE = "worker:queue"


def sent(session: ClientSession) -> list[list[Any]]:
    return [json.loads(text) for text in session.data_to_send()]


def reply(
    join_ref: str | None, ref: str, topic: str, status: str = "ok", response: Any = None
) -> str:
    payload = {"status": status, "response": {} if response is None else response}
    return encode_text(Message(join_ref, ref, topic, "phx_reply", payload))


def joined(topic: str = QUEUE, now: float = 0.0) -> ClientSession:
    session = ClientSession()
    session.connection_made(now)
    ref = session.join(topic, {}, now=now)
    session.receive_text(reply(ref, ref, topic))
    session.data_to_send()
    return session


# -- joining ---------------------------------------------------------------------------------


def test_join_sends_the_join_frame_with_join_ref_equal_to_ref() -> None:
    session = ClientSession()
    session.connection_made(0.0)
    ref = session.join(QUEUE, {"capacity": 5, "queues": {"manual>*": 5}}, now=0.0)
    assert ref == "1"
    assert session.data_to_send() == [
        '["1","1","worker:queue","phx_join",{"capacity":5,"queues":{"manual>*":5}}]'
    ]
    assert session.channel_state(QUEUE) is ClientChannelState.JOINING
    events = session.receive_text(reply("1", "1", QUEUE))
    assert events == [Reply(QUEUE, "1", "phx_join", "ok", {})]
    assert session.channel_state(QUEUE) is ClientChannelState.JOINED


def test_a_refused_join_errors_the_channel_and_may_be_retried() -> None:
    session = ClientSession()
    session.connection_made(0.0)
    session.join("run:r1", {"token": "bad"}, now=0.0)
    events = session.receive_text(reply("1", "1", "run:r1", "error", {"reason": "unauthorized"}))
    assert events == [Reply("run:r1", "1", "phx_join", "error", {"reason": "unauthorized"})]
    assert not events[0].ok  # type: ignore[union-attr]
    assert session.channel_state("run:r1") is ClientChannelState.ERRORED
    assert session.join("run:r1", {"token": "good"}, now=1.0) == "2"


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda s: s.join("phoenix", {}, now=0.0), "reserved_topic"),
        (lambda s: s.join(QUEUE, {}, now=0.0), "illegal_transition"),
        (lambda s: s.push("run:x", "fetch:plan", {}, now=0.0), "not_joined"),
        (lambda s: s.push(QUEUE, "phx_leave", {}, now=0.0), "reserved_event"),
        (lambda s: s.leave("run:x", now=0.0), "illegal_transition"),
    ],
)
def test_misuse_is_refused_and_changes_nothing(action: Any, code: str) -> None:
    session = joined()
    with pytest.raises(LocalProtocolError) as info:
        action(session)
    assert info.value.code == code
    assert session.data_to_send() == []
    assert session.channel_state(QUEUE) is ClientChannelState.JOINED


def test_nothing_can_be_sent_while_disconnected() -> None:
    session = ClientSession()
    with pytest.raises(LocalProtocolError) as info:
        session.join(QUEUE, {}, now=0.0)
    assert info.value.code == "not_connected"


def test_push_to_a_joining_topic_is_refused() -> None:
    session = ClientSession()
    session.connection_made(0.0)
    session.join(QUEUE, {}, now=0.0)
    with pytest.raises(LocalProtocolError, match="joining, not joined"):
        session.push(QUEUE, "claim", {}, now=0.0)


def test_transition_table_only_names_known_states() -> None:
    for state, table in TRANSITIONS.items():
        assert isinstance(state, ClientChannelState)
        assert all(isinstance(target, ClientChannelState) for target in table.values())


# -- replies are matched to requests ------------------------------------------------------------


def test_replies_are_matched_by_ref_in_any_order() -> None:
    session = joined()
    first = session.push(QUEUE, "claim", {"demand": 1}, now=0.0)
    second = session.push(QUEUE, "claim", {"demand": 1}, now=0.0)
    assert [frame[:4] for frame in sent(session)] == [
        ["1", first, QUEUE, "claim"],
        ["1", second, QUEUE, "claim"],
    ]
    assert session.receive_text(reply("1", second, QUEUE, response={"runs": []})) == [
        Reply(QUEUE, second, "claim", "ok", {"runs": []})
    ]
    assert session.receive_text(reply("1", first, QUEUE, response={"runs": []})) == [
        Reply(QUEUE, first, "claim", "ok", {"runs": []})
    ]
    assert session.receive_text(reply("1", first, QUEUE)) == []  # answered already
    assert session.receive_text(reply("1", "99", QUEUE)) == []  # never asked


def test_a_reply_on_the_wrong_topic_is_a_remote_error_and_changes_nothing() -> None:
    session = joined()
    ref = session.push(QUEUE, "claim", {}, now=0.0)
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(reply("1", ref, "run:other"))
    assert info.value.code == "reply_topic_mismatch"
    assert session.receive_text(reply("1", ref, QUEUE)) == [Reply(QUEUE, ref, "claim", "ok", {})]


def test_binary_reply_is_matched_like_a_text_one() -> None:
    session = joined("run:r1")
    ref = session.push("run:r1", "fetch:dataclip", {"id": "d"}, now=0.0)
    frame = BinaryReply("1", ref, "run:r1", "ok", b'{"data":{}}')
    events = session.receive_binary(encode_binary(frame, sender=Sender.SERVER))
    assert events == [Reply("run:r1", ref, "fetch:dataclip", "ok", b'{"data":{}}')]


@pytest.mark.parametrize("payload", [{"response": {}}, "ok", {"status": 1}, None])
def test_a_reply_without_a_status_is_a_remote_error(payload: Any) -> None:
    session = joined()
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(encode_text(Message("1", "1", QUEUE, "phx_reply", payload)))
    assert info.value.code == "bad_reply"


@pytest.mark.parametrize("event", ["phx_join", "phx_leave", "heartbeat"])
def test_client_only_events_from_the_server_are_remote_errors(event: str) -> None:
    session = joined()
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(encode_text(Message("1", None, QUEUE, event, {})))
    assert info.value.code == "unexpected_event"


# -- timeouts are data ---------------------------------------------------------------------------


def test_a_push_times_out_at_its_deadline_and_a_late_reply_is_ignored() -> None:
    session = joined(now=100.0)
    ref = session.push(QUEUE, "claim", {}, now=100.0, timeout=3600.0)
    assert session.next_deadline() == 130.0  # the heartbeat comes first
    assert session.deadline_of(ref) == 3700.0
    assert session.tick(3699.9) == []
    assert session.tick(3700.0) == [NoReply(QUEUE, ref, "claim", NoReplyReason.TIMEOUT)]
    assert session.deadline_of(ref) is None
    assert session.receive_text(reply("1", ref, QUEUE)) == []


def test_a_join_timeout_errors_the_channel_and_leaves_it_on_the_server() -> None:
    session = ClientSession(default_timeout=10.0, heartbeat_interval=1000.0)
    session.connection_made(0.0)
    ref = session.join("run:r1", {"token": "t"}, now=0.0)
    session.data_to_send()
    assert session.tick(10.0) == [NoReply("run:r1", ref, "phx_join", NoReplyReason.TIMEOUT)]
    assert session.channel_state("run:r1") is ClientChannelState.ERRORED
    assert sent(session) == [[ref, "2", "run:r1", "phx_leave", {}]]
    # a join reply that arrives after all changes nothing
    assert session.receive_text(reply(ref, ref, "run:r1")) == []
    assert session.channel_state("run:r1") is ClientChannelState.ERRORED


def test_a_leave_ends_on_any_answer_or_on_timeout() -> None:
    session = joined()
    ref = session.leave(QUEUE, now=0.0)
    assert session.channel_state(QUEUE) is ClientChannelState.LEAVING
    error = "There are no listeners on channel worker:queue"  # what lightning-mock answers
    events = session.receive_text(reply("1", str(ref), QUEUE, "error", error))
    assert events == [Reply(QUEUE, str(ref), "phx_leave", "error", error)]
    assert session.channel_state(QUEUE) is ClientChannelState.CLOSED

    session = joined()
    ref = session.leave(QUEUE, now=0.0)
    assert session.tick(30.0) == [NoReply(QUEUE, str(ref), "phx_leave", NoReplyReason.TIMEOUT)]
    assert session.channel_state(QUEUE) is ClientChannelState.CLOSED


def test_leaving_an_errored_channel_needs_no_frame() -> None:
    session = joined()
    session.receive_text(encode_text(Message("1", "1", QUEUE, "phx_error", {})))
    assert session.leave(QUEUE, now=0.0) is None
    assert session.data_to_send() == []
    assert session.channel_state(QUEUE) is ClientChannelState.CLOSED


# -- heartbeats --------------------------------------------------------------------------------


def test_heartbeats_every_interval_and_a_missed_reply_is_reported() -> None:
    session = ClientSession()
    session.connection_made(0.0)
    assert session.tick(29.9) == []
    assert session.tick(30.0) == []
    assert sent(session) == [[None, "1", "phoenix", "heartbeat", {}]]
    session.receive_text(reply(None, "1", "phoenix"))
    assert session.tick(60.0) == []
    assert sent(session) == [[None, "2", "phoenix", "heartbeat", {}]]
    assert session.tick(90.0) == [HeartbeatTimeout()]
    assert session.data_to_send() == []


def test_heartbeat_replies_can_be_optional_for_servers_that_never_send_them() -> None:
    session = ClientSession(require_heartbeat_reply=False)
    session.connection_made(0.0)
    for now in (30.0, 60.0, 90.0):
        assert session.tick(now) == []
    assert len(session.data_to_send()) == 3


# -- the server ends channels; the socket goes away ----------------------------------------------


def test_a_channel_closed_by_its_join_answer_is_forgotten_without_a_frame() -> None:
    session = joined("run:r1")
    session.closed_by_answer("run:r1")
    assert session.channel_state("run:r1") is ClientChannelState.CLOSED
    assert session.data_to_send() == []
    with pytest.raises(LocalProtocolError) as refused:  # it is no longer joined
        session.closed_by_answer("run:r1")
    assert refused.value.code == "illegal_transition"


def test_phx_close_ends_the_channel_and_its_requests() -> None:
    session = joined()
    ref = session.push(QUEUE, "claim", {}, now=0.0)
    events = session.receive_text(encode_text(Message("1", "1", QUEUE, "phx_close", {})))
    assert events == [
        NoReply(QUEUE, ref, "claim", NoReplyReason.CHANNEL_CLOSED),
        ChannelClosed(QUEUE, errored=False),
    ]
    assert session.channel_state(QUEUE) is ClientChannelState.CLOSED


def test_phx_error_errors_the_channel() -> None:
    session = joined()
    events = session.receive_text(encode_text(Message("1", "1", QUEUE, "phx_error", {})))
    assert events == [ChannelClosed(QUEUE, errored=True)]
    assert session.channel_state(QUEUE) is ClientChannelState.ERRORED


def test_messages_for_an_earlier_join_are_dropped() -> None:
    session = joined()
    stale = encode_text(Message("0", None, QUEUE, "phx_close", {}))
    assert session.receive_text(stale) == []
    assert session.channel_state(QUEUE) is ClientChannelState.JOINED
    push = encode_text(Message("1", None, QUEUE, "work-available", {}))
    assert session.receive_text(push) == [Push(QUEUE, "work-available", {})]
    unknown = encode_text(Message(None, None, "run:nobody", "work-available", {}))
    assert session.receive_text(unknown) == []


def test_losing_the_connection_fails_requests_and_errors_channels_and_refs_go_on() -> None:
    session = joined()
    ref = session.push(QUEUE, "claim", {}, now=0.0)
    session.join("run:r1", {"token": "t"}, now=0.0)
    events = session.connection_lost()
    assert set(events) == {
        NoReply(QUEUE, ref, "claim", NoReplyReason.DISCONNECTED),
        NoReply("run:r1", "3", "phx_join", NoReplyReason.DISCONNECTED),
        ChannelClosed(QUEUE, errored=True),
        ChannelClosed("run:r1", errored=True),
    }
    assert session.data_to_send() == []
    assert session.next_deadline() is None
    session.connection_made(50.0)
    assert session.join(QUEUE, {}, now=50.0) == "4"


# -- the recorded conversation ------------------------------------------------------------------


def _records(conn: int) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
    return [r for r in records if r["conn"] == conn]


def _ours(value: str | None, refs: dict[str, str]) -> str | None:
    return refs.get(value, value) if value else value


def _send_recorded(session: ClientSession, frame: list[Any], now: float) -> str:
    """Make the session send what the worker sent; return the one text frame it queued."""
    _, _, topic, event, payload = frame
    if topic == "phoenix":
        assert session.tick(now + 0.01) == []  # JS armed its timer a few ms before the proxy saw it
    elif event == "phx_join":
        session.join(topic, payload, now=now)
    elif event == "phx_leave":
        session.leave(topic, now=now)
    else:
        session.push(topic, event, payload, now=now)
    [text] = session.data_to_send()
    return text


def test_replays_the_recorded_worker_side_of_the_conversation() -> None:
    """Drive a session through everything ws-worker did on its first socket and feed it the
    mock's answers: every frame we send matches the recorded one (refs renumbered), and every
    reply and push is reported as the event it stands for."""
    session = ClientSession()
    refs: dict[str, str] = {}
    events: list[ClientEvent] = []
    for record in _records(1):
        now = record["t_ms"] / 1000
        if record["dir"] == "CONNECT":
            session.connection_made(now)
            continue
        assert session.tick(now) == []
        frame = record["frame"]
        if record["dir"] == "W->L":
            text = _send_recorded(session, frame, now)
            refs[frame[1]] = str(decode_text(text).ref)
            assert json.loads(text) == [_ours(frame[0], refs), refs[frame[1]], *frame[2:]]
        else:
            join_ref, ref, topic, event, payload = frame
            if event.startswith("chan_reply_"):
                event = f"chan_reply_{refs[ref]}"
            translated = Message(_ours(join_ref, refs), _ours(ref, refs), topic, event, payload)
            events.extend(session.receive_text(encode_text(translated)))
    replies = [e for e in events if isinstance(e, Reply)]
    pushes = [e for e in events if isinstance(e, Push)]
    assert [e for e in events if not isinstance(e, Reply | Push)] == []
    assert len(replies) == sum(1 for r in _records(1) if r["dir"] == "L->W") - len(pushes)
    assert pushes == [Push(QUEUE, "work-available", "{}")] * 3  # one per run
    plan = next(r for r in replies if r.request == "fetch:plan")
    assert isinstance(plan.response, dict) and plan.response["id"] == "smoke-run-1"
    # the mock never answers heartbeats: the JS client dropped the socket, and so do we
    assert session.tick(68.0) == [HeartbeatTimeout()]


# -- property: whatever the server sends -----------------------------------------------------------


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.none() | st.sampled_from(["1", "2", "", "x"]),
            st.none() | st.sampled_from(["1", "2", "3", "4", ""]),
            st.sampled_from([QUEUE, "run:r1", "phoenix", "other"]),
            st.sampled_from(
                [
                    "phx_reply",
                    "chan_reply_2",
                    "phx_close",
                    "phx_error",
                    "phx_join",
                    "heartbeat",
                    "x",
                ]
            ),
            st.none()
            | st.text(max_size=3)
            | st.fixed_dictionaries({"status": st.text(max_size=3)}),
        ),
        max_size=8,
    )
)
def test_any_server_frames_yield_events_or_a_remote_protocol_error(
    frames: list[tuple[Any, ...]],
) -> None:
    session = joined()
    session.push(QUEUE, "claim", {}, now=0.0)
    session.join("run:r1", {}, now=0.0)
    for frame in frames:
        try:
            session.receive_text(encode_text(Message(*frame)))
        except RemoteProtocolError as error:
            assert error.code in {
                *DECODE_ERRORS,
                "bad_reply",
                "reply_topic_mismatch",
                "unexpected_event",
            }
    session.tick(1e9)
    session.connection_lost()
