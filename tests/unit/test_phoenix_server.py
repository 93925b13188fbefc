"""ServerSession: joins decided by the application, replies matched to requests, Phoenix's
automatic answers, and every frame the real ws-worker sent, replayed into it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulmen.errors import LocalProtocolError, RemoteProtocolError
from fulmen.phoenix.client import ClientSession
from fulmen.phoenix.client import Reply as ClientReply
from fulmen.phoenix.frames import (
    DECODE_ERRORS,
    JSON,
    BinaryPush,
    BinaryReply,
    Message,
    ReplyStatus,
    Sender,
    decode_binary,
    encode_binary,
    encode_text,
)
from fulmen.phoenix.server import (
    IdleTimeout,
    JoinRequest,
    Left,
    LeftReason,
    Request,
    ServerChannelState,
    ServerEvent,
    ServerSession,
)

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix" / "capture.jsonl"
QUEUE = "worker:queue"


def frame(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> str:
    return encode_text(Message(join_ref, ref, topic, event, payload))


def sent(session: ServerSession) -> list[Any]:
    out = session.data_to_send()
    return [json.loads(f) if isinstance(f, str) else f for f in out]


def joined(topic: str = QUEUE) -> ServerSession:
    session = ServerSession(now=0.0)
    [join] = session.receive_text(frame("1", "1", topic, "phx_join", {}), now=0.0)
    assert isinstance(join, JoinRequest)
    session.accept(join)
    session.data_to_send()
    return session


# -- joins -----------------------------------------------------------------------------------


def test_a_join_waits_for_the_application_then_is_accepted() -> None:
    session = ServerSession(now=0.0)
    payload: dict[str, JSON] = {"capacity": 5, "queues": {"manual>*": 5}}
    events = session.receive_text(frame("3", "3", QUEUE, "phx_join", payload), now=1.0)
    assert events == [JoinRequest(QUEUE, "3", "3", payload)]
    assert session.channel_state(QUEUE) is ServerChannelState.JOINING
    assert session.data_to_send() == []
    assert session.accept(events[0])  # type: ignore[arg-type]
    assert session.data_to_send() == [
        '["3","3","worker:queue","phx_reply",{"response":{},"status":"ok"}]'
    ]
    assert session.channel_state(QUEUE) is ServerChannelState.JOINED


def test_a_refused_join_leaves_the_topic_closed() -> None:
    session = ServerSession(now=0.0)
    [join] = session.receive_text(frame("1", "1", "run:r1", "phx_join", {"token": 1}), now=0.0)
    assert session.refuse(join, {"reason": "unauthorized"})  # type: ignore[arg-type]
    assert sent(session) == [
        [
            "1",
            "1",
            "run:r1",
            "phx_reply",
            {"response": {"reason": "unauthorized"}, "status": "error"},
        ]
    ]
    assert session.channel_state("run:r1") is ServerChannelState.CLOSED


def test_a_second_join_replaces_the_first_channel() -> None:
    session = joined()
    events = session.receive_text(frame("5", "5", QUEUE, "phx_join", {}), now=0.0)
    assert events == [Left(QUEUE, "1", LeftReason.REPLACED), JoinRequest(QUEUE, "5", "5", {})]
    assert sent(session) == [["1", "1", QUEUE, "phx_close", {}]]


def test_a_decision_on_a_superseded_join_is_not_sent() -> None:
    # ws-worker after a reconnect: join, leave it, join again, before any reply (capture conn 2)
    session = ServerSession(now=0.0)
    [first] = session.receive_text(frame("167", "167", QUEUE, "phx_join", {}), now=0.0)
    left = session.receive_text(frame("167", "168", QUEUE, "phx_leave", {}), now=0.0)
    [second] = session.receive_text(frame("169", "169", QUEUE, "phx_join", {}), now=0.0)
    assert left == [Left(QUEUE, "167", LeftReason.LEFT)]
    assert sent(session) == [
        ["167", "168", QUEUE, "phx_reply", {"response": {}, "status": "ok"}],
        ["167", "167", QUEUE, "phx_close", {}],
    ]
    assert not session.accept(first)  # type: ignore[arg-type]
    assert session.accept(second)  # type: ignore[arg-type]
    assert [f[:2] for f in sent(session)] == [["169", "169"]]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(None, "1", QUEUE, "phx_join", {}), "missing_join_ref"),
        (frame("1", None, QUEUE, "claim", {}), "missing_ref"),
        (frame("1", "", QUEUE, "claim", {}), "missing_ref"),
        (frame("1", "2", QUEUE, "phx_reply", {}), "unexpected_event"),
        (frame("1", "2", QUEUE, "phx_close", {}), "unexpected_event"),
        ("[]", "wrong_length"),
    ],
)
def test_malformed_client_frames_are_remote_errors(data: str, code: str) -> None:
    session = joined()
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(data, now=0.0)
    assert info.value.code == code
    assert session.data_to_send() == []


# -- requests and replies -----------------------------------------------------------------------


def test_requests_are_reported_and_each_is_answered_once() -> None:
    session = joined()
    payload: dict[str, JSON] = {"demand": 1, "worker_name": None, "queues": ["manual", "*"]}
    [request] = session.receive_text(frame("1", "7", QUEUE, "claim", payload), now=0.0)
    assert request == Request(QUEUE, "1", "7", "claim", payload)
    assert session.reply(request, ReplyStatus.OK, {"runs": []})
    assert session.data_to_send() == [
        '["1","7","worker:queue","phx_reply",{"response":{"runs":[]},"status":"ok"}]'
    ]
    with pytest.raises(LocalProtocolError) as info:
        session.reply(request, ReplyStatus.OK, {})
    assert info.value.code == "already_replied"


def test_a_ref_awaiting_its_reply_cannot_be_reused() -> None:
    session = joined()
    session.receive_text(frame("1", "7", QUEUE, "claim", {}), now=0.0)
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_text(frame("1", "7", QUEUE, "claim", {}), now=0.0)
    assert info.value.code == "duplicate_ref"


def test_bytes_are_answered_with_a_binary_reply() -> None:
    session = joined("run:r1")
    [request] = session.receive_text(
        frame("1", "4", "run:r1", "fetch:dataclip", {"id": "d"}), now=0
    )
    session.reply(request, ReplyStatus.OK, b'{"data":{}}')  # type: ignore[arg-type]
    [data] = session.data_to_send()
    assert isinstance(data, bytes)
    assert decode_binary(data, sender=Sender.SERVER) == BinaryReply(
        "1", "4", "run:r1", "ok", b'{"data":{}}'
    )


def test_a_binary_push_from_the_client_is_a_request_with_bytes() -> None:
    session = joined()
    data = encode_binary(BinaryPush("1", "9", QUEUE, "upload", b"\x00"), sender=Sender.CLIENT)
    assert session.receive_binary(data, now=0.0) == [Request(QUEUE, "1", "9", "upload", b"\x00")]


def test_a_reply_for_a_channel_that_has_gone_is_not_sent() -> None:
    session = joined()
    [request] = session.receive_text(frame("1", "7", QUEUE, "claim", {}), now=0.0)
    session.receive_text(frame("1", "8", QUEUE, "phx_leave", {}), now=0.0)
    session.data_to_send()
    assert not session.reply(request, ReplyStatus.OK, {"runs": []})  # type: ignore[arg-type]
    assert session.data_to_send() == []


# -- what Phoenix answers by itself ---------------------------------------------------------------


def test_heartbeats_are_answered_with_a_null_join_ref() -> None:
    session = ServerSession(now=0.0)
    assert session.receive_text(frame(None, "9", "phoenix", "heartbeat", {}), now=0.0) == []
    assert session.data_to_send() == [
        '[null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}]'
    ]


@pytest.mark.parametrize(
    "data",
    [
        frame("1", "2", "run:r1", "fetch:plan", {}),
        frame("1", "2", "run:r1", "phx_leave", {}),
        frame(None, "2", "phoenix", "claim", {}),
    ],
)
def test_pushes_to_a_topic_not_joined_are_refused(data: str) -> None:
    session = joined()
    assert session.receive_text(data, now=0.0) == []
    [reply] = sent(session)
    assert reply[1:4] == ["2", json.loads(data)[2], "phx_reply"]
    assert reply[4] == {"response": {"reason": "unmatched topic"}, "status": "error"}


def test_a_push_before_the_join_is_decided_is_refused() -> None:
    session = ServerSession(now=0.0)
    session.receive_text(frame("1", "1", QUEUE, "phx_join", {}), now=0.0)
    session.receive_text(frame("1", "2", QUEUE, "claim", {}), now=0.0)
    assert sent(session)[0][4]["status"] == "error"


def test_messages_with_an_old_join_ref_are_dropped() -> None:
    session = joined()
    assert session.receive_text(frame("0", "2", QUEUE, "claim", {}), now=0.0) == []
    assert session.data_to_send() == []


def test_leave_is_answered_then_closed() -> None:
    session = joined()
    assert session.receive_text(frame("1", "2", QUEUE, "phx_leave", {}), now=0.0) == [
        Left(QUEUE, "1", LeftReason.LEFT)
    ]
    assert sent(session) == [
        ["1", "2", QUEUE, "phx_reply", {"response": {}, "status": "ok"}],
        ["1", "1", QUEUE, "phx_close", {}],
    ]


def test_a_join_can_be_accepted_and_closed_with_one_answer() -> None:
    """A run join that carried the run's end asked to be closed with its answer: the answer
    goes, then nothing (no phx_close), and the topic is forgotten."""
    session = ServerSession(now=0.0)
    [join] = session.receive_text(frame("1", "1", "run:r1", "phx_join", {}), now=0.0)
    assert isinstance(join, JoinRequest)
    assert session.accept(join, {"left": True}, close=True)
    assert sent(session) == [
        ["1", "1", "run:r1", "phx_reply", {"response": {"left": True}, "status": "ok"}]
    ]
    assert session.channel_state("run:r1") is ServerChannelState.CLOSED
    assert session.topics == frozenset()


def test_topics_that_closed_leave_no_state_behind() -> None:
    """A worker's socket joins and leaves a topic per run, for weeks: left, refused,
    replaced, closed or errored, a topic is forgotten, with its unanswered requests."""
    session = joined()
    ref = 1
    for n in range(200):
        topic = f"run:{n}"
        ref += 1
        [join] = session.receive_text(frame(str(ref), str(ref), topic, "phx_join", {}), now=0.0)
        assert isinstance(join, JoinRequest)
        ending = n % 5
        if ending == 0:
            session.refuse(join, {"reason": "unauthorized"})
        else:
            session.accept(join)
            ref += 1  # a request left unanswered
            session.receive_text(frame(join.join_ref, str(ref), topic, "fetch:plan", {}), now=0.0)
        if ending == 1:
            ref += 1
            leave = frame(join.join_ref, str(ref), topic, "phx_leave", {})
            left = Left(topic, join.join_ref, LeftReason.LEFT)
            assert session.receive_text(leave, now=0.0) == [left]
        elif ending == 2:
            session.close(topic)
        elif ending == 3:
            session.error(topic)
        elif ending == 4:  # replaced by a new join, then left
            ref += 1
            *_, rejoin = session.receive_text(
                frame(str(ref), str(ref), topic, "phx_join", {}), now=0.0
            )
            assert isinstance(rejoin, JoinRequest)
            session.accept(rejoin)
            ref += 1
            session.receive_text(frame(str(ref - 1), str(ref), topic, "phx_leave", {}), now=0.0)
        session.data_to_send()
    assert session.topics == {QUEUE}


# -- the server's own pushes, closes and errors ---------------------------------------------


def test_pushes_go_only_to_joined_topics_with_the_current_join_ref() -> None:
    session = joined()
    session.push(QUEUE, "work-available", {})
    session.push(QUEUE, "blob", b"\x01")
    text, data = session.data_to_send()
    assert text == '["1",null,"worker:queue","work-available",{}]'
    assert decode_binary(data, sender=Sender.SERVER) == BinaryPush("1", "", QUEUE, "blob", b"\x01")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError) as info:
        session.push("run:r1", "work-available", {})
    assert info.value.code == "not_joined"
    with pytest.raises(LocalProtocolError) as info:
        session.push(QUEUE, "phx_close", {})
    assert info.value.code == "reserved_event"


def test_close_and_error_end_the_channel() -> None:
    session = joined()
    session.close(QUEUE)
    assert sent(session) == [["1", "1", QUEUE, "phx_close", {}]]
    assert session.channel_state(QUEUE) is ServerChannelState.CLOSED
    session = joined()
    session.error(QUEUE)
    assert sent(session) == [["1", "1", QUEUE, "phx_error", {}]]
    with pytest.raises(LocalProtocolError):
        session.close(QUEUE)


def test_idle_timeout_counts_from_the_last_inbound_frame() -> None:
    session = ServerSession(now=0.0, idle_timeout=60.0)
    assert session.tick(59.0) == []
    session.receive_text(frame(None, "1", "phoenix", "heartbeat", {}), now=30.0)
    assert session.next_deadline() == 90.0
    assert session.tick(89.9) == []
    assert session.tick(90.0) == [IdleTimeout()]


# -- client and server together ----------------------------------------------------------------


def test_a_client_session_and_a_server_session_talk() -> None:
    client, server = ClientSession(), ServerSession(now=0.0)
    client.connection_made(0.0)

    def pump() -> list[ServerEvent]:
        events: list[ServerEvent] = []
        for text in client.data_to_send():
            events.extend(server.receive_text(text, now=0.0))
        return events

    client.join("run:r1", {"token": "t"}, now=0.0)
    [join] = pump()
    server.accept(join)  # type: ignore[arg-type]
    [joined_reply] = [e for f in server.data_to_send() for e in client.receive_text(f)]
    assert isinstance(joined_reply, ClientReply) and joined_reply.ok
    ref = client.push("run:r1", "fetch:dataclip", {"id": "d"}, now=0.0)
    [request] = pump()
    server.reply(request, ReplyStatus.OK, b"null")  # type: ignore[arg-type]
    [data] = server.data_to_send()
    assert client.receive_binary(data) == [  # type: ignore[arg-type]
        ClientReply("run:r1", ref, "fetch:dataclip", "ok", b"null")
    ]


# -- every frame the real worker sent ----------------------------------------------------------


def test_accepts_every_frame_the_real_worker_sent() -> None:
    """Replay each recorded socket's W->L frames; answer every join and request at once. Every
    request gets exactly one reply with its ref, heartbeats included (the mock never sent
    those), and nothing is refused."""
    records = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
    for conn in sorted({r["conn"] for r in records}):
        session = ServerSession(now=0.0)
        asked: list[str] = []
        for record in records:
            if record["conn"] != conn or record["dir"] != "W->L":
                continue
            asked.append(record["frame"][1])
            for event in session.receive_text(
                json.dumps(record["frame"]), now=record["t_ms"] / 1000
            ):
                if isinstance(event, JoinRequest):
                    assert session.accept(event)
                elif isinstance(event, Request):
                    assert session.reply(event, ReplyStatus.OK, {})
        replies = [f for f in sent(session) if f[3] == "phx_reply"]
        assert [r[1] for r in replies] == asked
        assert all(r[4]["status"] == "ok" for r in replies)


# -- property: whatever a client sends -------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.none() | st.sampled_from(["1", "2", ""]),
            st.none() | st.sampled_from(["1", "2", "3", ""]),
            st.sampled_from([QUEUE, "run:r1", "phoenix"]),
            st.sampled_from(["phx_join", "phx_leave", "heartbeat", "phx_reply", "claim"]),
            st.none() | st.text(max_size=3) | st.just({}),
        ),
        max_size=8,
    )
)
def test_any_client_frames_yield_events_or_a_remote_protocol_error(
    frames: list[tuple[Any, ...]],
) -> None:
    session = joined()
    codes = {*DECODE_ERRORS, "missing_ref", "missing_join_ref", "duplicate_ref", "unexpected_event"}
    for item in frames:
        try:
            events = session.receive_text(frame(*item), now=0.0)
        except RemoteProtocolError as error:
            assert error.code in codes
            continue
        for event in events:
            if isinstance(event, JoinRequest):
                session.accept(event)
            elif isinstance(event, Request):
                session.reply(event, ReplyStatus.OK, None)
    session.data_to_send()
