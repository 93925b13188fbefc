"""Outbox and RunChannel: ordered delivery, batching, what happens to refused and unanswered
events, and resending after a drop while the run token is valid. Fakes stand in for the
socket; nothing here sleeps."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from fulmen.contract import (
    JSON,
    LogLevel,
    LogLine,
    RunComplete,
    RunLog,
    StepComplete,
    StepStart,
)
from fulmen.errors import NoReplyError, RefusedError
from fulmen.phoenix.client import ChannelClosed, Push
from fulmen.phoenix.frames import Message as Frame
from fulmen.phoenix.frames import encode_text
from fulmen.reasons import ExitReason, Reason
from fulmen.worker.channels import RunChannel
from fulmen.worker.events import Message
from fulmen.worker.outbox import BUNDLE_BYTES, Outbox, take_batch

TS = "1795358227000000"


def log(text: str) -> RunLog:
    return RunLog("r", LogLine((text,), "JOB", LogLevel.INFO, TS))


def start(step: str) -> StepStart:
    return StepStart(step, "job", TS)


DONE = RunComplete(ExitReason(Reason.SUCCESS), TS)


class FakeSender:
    """Records what it is asked to send; ``outcomes`` scripts failures per event name."""

    def __init__(
        self,
        outcomes: dict[str, list[Exception]] | None = None,
        answer: Callable[[str, JSON], JSON] | None = None,
    ) -> None:
        self.sent: list[tuple[str, JSON]] = []
        self.outcomes = outcomes or {}
        self.answer = answer
        self.gate: asyncio.Event | None = None
        self.got = asyncio.Event()

    async def request(self, event: str, payload: JSON) -> JSON | bytes:
        if self.gate is not None:
            await self.gate.wait()
        # As it goes on the wire: run:reports embeds payloads already written (orjson.Fragment).
        payload = json.loads(encode_text(Frame("1", "2", "run:r", event, payload)))[4]
        self.sent.append((event, payload))
        self.got.set()
        failures = self.outcomes.get(event)
        if failures:
            raise failures.pop(0)
        return self.answer(event, payload) if self.answer is not None else None


def run(body: Callable[[], Any]) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(5):
            return await body()

    return asyncio.run(main())


async def deliver(outbox: Outbox, messages: list[Message]) -> None:
    outbox.put(messages)
    outbox.close()
    await outbox.run()


def test_take_batch_takes_leading_logs_up_to_the_limit() -> None:
    queue: deque[Message] = deque([log("1"), log("2"), log("3"), start("s"), log("4")])
    assert [m.line.message for m in take_batch(queue, 2)] == [("1",), ("2",)]
    assert [m.line.message for m in take_batch(queue, 5)] == [("3",)]
    assert take_batch(queue, 5) == []
    assert isinstance(queue[0], StepStart)


def test_events_go_one_at_a_time_in_order() -> None:
    sender = FakeSender()
    messages: list[Message] = [log("a"), start("s1"), log("b"), DONE]
    run(lambda: deliver(Outbox(sender, "r"), messages))
    assert [event for event, _ in sender.sent] == [
        "run:log",
        "step:start",
        "run:log",
        "run:complete",
    ]
    assert [payload for _, payload in sender.sent] == [m.to_wire() for m in messages]


def test_each_event_waits_for_the_reply_to_the_one_before() -> None:
    async def body() -> None:
        sender = FakeSender()
        sender.gate = asyncio.Event()
        outbox = Outbox(sender, "r")
        task = asyncio.create_task(outbox.run())
        outbox.put([start("s1"), start("s2")])
        await asyncio.sleep(0)
        assert sender.sent == []  # the first is still waiting for its reply
        sender.gate.set()
        outbox.close()
        await task
        assert [p for _, p in sender.sent] == [start("s1").to_wire(), start("s2").to_wire()]

    run(body)


def test_logs_are_batched_and_a_non_log_event_ends_a_batch() -> None:
    sender = FakeSender()
    outbox = Outbox(sender, "r", batch_logs=True, batch_limit=2, batch_interval=1.0)
    messages: list[Message] = [log("1"), log("2"), log("3"), start("s"), log("4"), DONE]
    run(lambda: deliver(outbox, messages))
    assert [event for event, _ in sender.sent] == [
        "run:batch_logs",
        "run:batch_logs",
        "step:start",
        "run:batch_logs",
        "run:complete",
    ]
    assert sender.sent[0][1] == {
        "run_id": "r",
        "logs": [log("1").line.to_wire(), log("2").line.to_wire()],
    }


def test_a_batch_waits_at_most_its_interval() -> None:
    async def body() -> None:
        sender = FakeSender()
        outbox = Outbox(sender, "r", batch_logs=True, batch_limit=50, batch_interval=0.01)
        task = asyncio.create_task(outbox.run())
        outbox.put([log("1")])
        await sender.got.wait()  # the interval passed with only one line waiting
        outbox.put([log("2")])
        outbox.close()
        await task
        assert [e for e, _ in sender.sent] == ["run:batch_logs", "run:batch_logs"]

    run(body)


def each_ok_but(refused: str | None = None) -> Callable[[str, JSON], JSON]:
    """A Fulmen coordinator's answers: ``run:reports`` gets one reply per report, the ones of
    the ``refused`` event an error."""

    def answer(event: str, payload: JSON) -> JSON:
        if event != "run:reports":
            return None
        assert isinstance(payload, dict) and isinstance(payload["reports"], list)
        replies: list[JSON] = [
            {"status": "error", "response": {"step_id": ["bad"]}}
            if isinstance(item, dict) and item["event"] == refused
            else {"status": "ok", "response": None}
            for item in payload["reports"]
        ]
        return {"replies": replies}

    return answer


def finish(step: str, output: str = '{"data":{}}') -> StepComplete:
    return StepComplete(
        step, "job", ExitReason(Reason.SUCCESS), output_dataclip_id="o", output_dataclip=output
    )


def test_what_is_queued_goes_as_one_frame_and_each_report_is_answered() -> None:
    sender = FakeSender(answer=each_ok_but(refused="step:start"))
    outbox = Outbox(sender, "r", bundle=True, batch_interval=1.0)
    messages: list[Message] = [log("1"), log("2"), start("s"), log("3"), finish("s"), DONE]
    run(lambda: deliver(outbox, messages))
    [(event, payload)] = sender.sent
    assert event == "run:reports"
    assert payload == {
        "reports": [
            {
                "event": "run:batch_logs",
                "payload": {
                    "run_id": "r",
                    "logs": [log("1").line.to_wire(), log("2").line.to_wire()],
                },
            },
            {"event": "step:start", "payload": start("s").to_wire()},
            {
                "event": "run:batch_logs",
                "payload": {"run_id": "r", "logs": [log("3").line.to_wire()]},
            },
            {"event": "step:complete", "payload": finish("s").to_wire()},
            {"event": "run:complete", "payload": DONE.to_wire()},
        ]
    }
    assert [(s.event, s.outcome, s.count) for s in outbox.sent] == [
        ("run:batch_logs", "ok", 2),
        ("step:start", "refused", 1),
        ("run:batch_logs", "ok", 1),
        ("step:complete", "ok", 1),
        ("run:complete", "ok", 1),
    ]


def test_a_lone_report_and_one_too_big_or_odd_for_a_frame_go_on_their_own() -> None:
    big = finish("s2", '{"data":"' + "x" * BUNDLE_BYTES + '"}')
    odd = RunLog("r", LogLine(("\ud800 lone surrogate",), "JOB", LogLevel.INFO, TS))
    messages: list[Message] = [start("s1"), big, start("s3"), odd, DONE]
    sender = FakeSender(answer=each_ok_but())
    outbox = Outbox(sender, "r", bundle=True, batch_interval=1.0)
    run(lambda: deliver(outbox, [start("s0")]))
    assert [e for e, _ in sender.sent] == ["step:start"]  # alone: no frame of one
    sender = FakeSender(answer=each_ok_but())
    outbox = Outbox(sender, "r", bundle=True, batch_interval=1.0)
    run(lambda: deliver(outbox, messages))
    assert [e for e, _ in sender.sent] == [
        "step:start",  # held back by the big one, alone: a frame of one is sent plainly
        "step:complete",
        "step:start",
        "run:batch_logs",  # orjson cannot write it; phoenix.frames falls back for it alone
        "run:complete",
    ]
    assert [s.outcome for s in outbox.sent] == ["ok"] * 5


def test_a_short_runs_reports_wait_for_its_end_and_go_as_one_frame() -> None:
    async def body() -> None:
        sender = FakeSender(answer=each_ok_but())
        outbox = Outbox(sender, "r", bundle=True, batch_interval=60.0)
        task = asyncio.create_task(outbox.run())
        outbox.put([log("1"), start("s")])
        await asyncio.sleep(0)  # the outbox runs, and waits: the run's end is not queued
        assert sender.sent == []
        outbox.put([finish("s"), DONE])
        outbox.close()
        await task
        [(event, payload)] = sender.sent
        assert event == "run:reports" and isinstance(payload, dict)
        assert [r["event"] for r in payload["reports"]] == [
            "run:batch_logs",
            "step:start",
            "step:complete",
            "run:complete",
        ]

    run(body)


def test_a_long_runs_reports_go_when_the_interval_has_passed() -> None:
    async def body() -> None:
        sender = FakeSender(answer=each_ok_but())
        outbox = Outbox(sender, "r", bundle=True, batch_interval=0.01)
        task = asyncio.create_task(outbox.run())
        outbox.put([log("1"), start("s")])
        await sender.got.wait()  # sent without the run's end, once the interval passed
        assert [e for e, _ in sender.sent] == ["run:reports"]
        outbox.put([DONE])
        outbox.close()
        await task
        assert [e for e, _ in sender.sent] == ["run:reports", "run:complete"]

    run(body)


def test_a_refused_or_lost_frame_counts_each_of_its_reports() -> None:
    sender = FakeSender({"run:reports": [RefusedError("bad frame", code="refused")]})
    outbox = Outbox(sender, "r", bundle=True, batch_interval=1.0)
    run(lambda: deliver(outbox, [start("s"), DONE]))
    assert [(s.event, s.outcome) for s in outbox.sent] == [
        ("step:start", "refused"),
        ("run:complete", "refused"),
    ]
    sender = FakeSender({"run:reports": [RefusedError("expired", code="token_expired")]})
    outbox = Outbox(sender, "r", bundle=True, batch_interval=1.0)
    run(lambda: deliver(outbox, [start("s"), DONE]))
    assert [s.outcome for s in outbox.sent] == ["lost", "lost"]


def test_refused_and_unanswered_events_are_passed_over() -> None:
    sender = FakeSender(
        {
            "run:log": [RefusedError("bad log", code="refused")],
            "step:start": [NoReplyError("no reply", code="timeout")],
        }
    )
    outbox = Outbox(sender, "r")
    run(lambda: deliver(outbox, [log("a"), start("s"), log("b"), DONE]))
    assert [s.outcome for s in outbox.sent] == ["refused", "no_reply", "ok", "ok"]
    assert len(sender.sent) == 4  # nothing was sent twice


def test_when_the_channel_is_gone_for_good_the_rest_is_given_up() -> None:
    sender = FakeSender({"step:start": [RefusedError("expired", code="token_expired")]})
    outbox = Outbox(sender, "r")
    run(lambda: deliver(outbox, [log("a"), start("s"), log("b"), DONE]))
    assert [s.outcome for s in outbox.sent] == ["ok", "lost", "lost", "lost"]
    assert [e for e, _ in sender.sent] == ["run:log", "step:start"]


def test_events_that_come_after_the_channel_is_gone_are_counted_not_kept() -> None:
    async def body() -> None:
        sender = FakeSender({"run:log": [RefusedError("expired", code="token_expired")]})
        outbox = Outbox(sender, "r")
        outbox.put([log("a")])
        await outbox.run()  # gives up: returns before close
        outbox.put([start("s"), DONE])
        assert outbox.pending == 0
        assert [s.outcome for s in outbox.sent] == ["lost", "lost", "lost"]

    run(body)


# -- RunChannel: rejoin and resend ------------------------------------------------------------


class FakeLink:
    """A connection whose requests fail as scripted; joins are recorded."""

    def __init__(self, failures: list[NoReplyError | None]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, str]] = []
        self.joined_with: list[JSON] = []
        self.connected = True
        self.up = asyncio.Event()
        self.up.set()
        self.join_refusal: RefusedError | None = None
        self.join_failures: list[NoReplyError] = []
        self.frame_reply: JSON = {"status": "ok", "response": {"replies": ["ok"]}}

    async def wait_connected(self) -> None:
        await self.up.wait()

    async def join(self, topic: str, payload: JSON, *, timeout: float | None = None) -> JSON:
        self.calls.append(("join", topic))
        self.joined_with.append(payload)
        if self.join_failures:
            raise self.join_failures.pop(0)
        if self.join_refusal is not None:
            raise self.join_refusal
        if isinstance(payload, dict) and "reports" in payload:  # a JOIN_REPORTS server
            ok = isinstance(self.frame_reply, dict) and self.frame_reply["status"] == "ok"
            return {"reports": self.frame_reply, "left": bool(payload.get("leave")) and ok}
        return {}

    async def request(
        self, topic: str, event: str, payload: JSON, *, timeout: float | None = None
    ) -> JSON | bytes:
        self.calls.append((event, topic))
        await asyncio.sleep(0)  # let concurrent requests be in flight together
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return {"ok": event}

    async def leave(self, topic: str, *, timeout: float = 5.0) -> None:
        self.calls.append(("leave", topic))

    def forget(self, topic: str) -> None:
        self.calls.append(("forget", topic))

    def on_push(self, topic: str, handler: Callable[[Push], None]) -> None: ...

    def on_channel_closed(self, topic: str, handler: Callable[[ChannelClosed], None]) -> None: ...


def channel(link: FakeLink, expires_at: float = 100.0, now: float = 50.0) -> RunChannel:
    return RunChannel(link, "r1", "tok", expires_at=expires_at, clock=lambda: now)


@pytest.mark.parametrize("code", ["disconnected", "channel_closed"])
def test_a_dropped_request_is_resent_after_rejoining(code: str) -> None:
    link = FakeLink([NoReplyError("gone", code=code)])
    ch = channel(link)

    async def body() -> JSON | bytes:
        await ch.join()
        return await ch.request("step:complete", {"step_id": "s"})

    assert run(body) == {"ok": "step:complete"}
    assert link.calls == [
        ("join", "run:r1"),
        ("step:complete", "run:r1"),
        ("join", "run:r1"),
        ("step:complete", "run:r1"),
    ]
    assert ch.joins == 2


def test_a_request_that_timed_out_is_not_resent() -> None:
    link = FakeLink([NoReplyError("slow", code="timeout")])
    with pytest.raises(NoReplyError, match="slow"):
        run(lambda: channel(link).request("run:log", {}))
    assert link.calls == [("run:log", "run:r1")]


def test_no_rejoin_once_the_token_has_expired() -> None:
    link = FakeLink([NoReplyError("gone", code="disconnected")])
    with pytest.raises(RefusedError) as refused:
        run(lambda: channel(link, expires_at=10.0, now=50.0).request("run:log", {}))
    assert refused.value.code == "token_expired"
    assert ("join", "run:r1") not in link.calls


def test_a_refused_rejoin_ends_the_channel() -> None:
    link = FakeLink([NoReplyError("gone", code="disconnected")])
    link.join_refusal = RefusedError("not found", code="not_found")
    with pytest.raises(RefusedError) as refused:
        run(lambda: channel(link).request("run:log", {}))
    assert refused.value.code == "not_found"


def test_concurrent_requests_rejoin_once() -> None:
    link = FakeLink(
        [NoReplyError("gone", code="disconnected"), NoReplyError("gone", code="disconnected")]
    )
    ch = channel(link)

    async def body() -> list[Any]:
        return list(await asyncio.gather(ch.request("fetch:credential", {}), ch.request("x", {})))

    assert run(body) == [{"ok": "fetch:credential"}, {"ok": "x"}]
    assert link.calls.count(("join", "run:r1")) == 1


def test_the_outbox_and_channel_together_lose_nothing_over_a_drop() -> None:
    link = FakeLink([None, NoReplyError("gone", code="disconnected")])
    ch = channel(link)
    outbox = Outbox(ch, "r1")
    run(lambda: deliver(outbox, [log("a"), start("s"), DONE]))
    sent = [event for event, topic in link.calls if event != "join"]
    assert sent == ["run:log", "step:start", "step:start", "run:complete"]
    assert [s.outcome for s in outbox.sent] == ["ok", "ok", "ok"]


# -- RunChannel of a run its claim brought (CLAIM_FETCHES): joined on its first request -------

FRAME: JSON = {"reports": [{"event": "run:start", "payload": {"timestamp": "1"}}]}


def claimed_channel(link: FakeLink, reports_in_join: bool = True) -> RunChannel:
    return RunChannel(
        link,
        "r1",
        "tok",
        expires_at=100.0,
        clock=lambda: 50.0,
        join_first=True,
        reports_in_join=reports_in_join,
    )


def test_a_first_frame_goes_inside_the_join_and_is_answered_there() -> None:
    link = FakeLink([])
    ch = claimed_channel(link)

    async def body() -> list[JSON | bytes]:
        return [await ch.request("run:reports", FRAME), await ch.request("run:complete", {})]

    assert run(body) == [{"replies": ["ok"]}, {"ok": "run:complete"}]
    assert link.calls == [("join", "run:r1"), ("run:complete", "run:r1")]
    assert link.joined_with == [{"token": "tok", "reports": FRAME["reports"]}]


def test_a_frame_refused_inside_the_join_is_refused_as_if_sent_alone() -> None:
    link = FakeLink([])
    link.frame_reply = {"status": "error", "response": {"reports[0].event": ["is wrong"]}}
    with pytest.raises(RefusedError, match=r"run:reports on run:r1 was refused: reports\[0\]"):
        run(lambda: claimed_channel(link).request("run:reports", FRAME))
    assert link.calls == [("join", "run:r1")]


def test_a_first_request_that_is_no_frame_is_sent_after_the_join() -> None:
    link = FakeLink([])
    for reports_in_join, event, payload in [
        (True, "fetch:credential", {"id": "c"}),
        (False, "run:reports", FRAME),  # a server that does not take frames in joins
    ]:
        link.calls.clear()
        link.joined_with.clear()
        ch = claimed_channel(link, reports_in_join)
        assert run(lambda: ch.request(event, payload)) == {"ok": event}  # noqa: B023
        assert link.calls == [("join", "run:r1"), (event, "run:r1")]
        assert link.joined_with == [{"token": "tok"}]


def test_a_first_join_lost_to_a_drop_goes_again_with_its_frame() -> None:
    link = FakeLink([])
    link.join_failures = [NoReplyError("gone", code="disconnected")]
    assert run(lambda: claimed_channel(link).request("run:reports", FRAME)) == {"replies": ["ok"]}
    assert link.joined_with == [{"token": "tok", "reports": FRAME["reports"]}] * 2


def test_concurrent_first_requests_join_once() -> None:
    link = FakeLink([])
    ch = claimed_channel(link)

    async def body() -> list[Any]:
        return list(await asyncio.gather(ch.request("fetch:credential", {}), ch.request("x", {})))

    assert run(body) == [{"ok": "fetch:credential"}, {"ok": "x"}]
    assert link.calls.count(("join", "run:r1")) == 1


END_FRAME: JSON = {
    "reports": [
        {"event": "run:start", "payload": {"timestamp": "1"}},
        {"event": "run:complete", "payload": {"reason": "success", "timestamp": "2"}},
    ]
}


def test_a_join_whose_frame_ends_the_run_is_closed_by_its_answer() -> None:
    link = FakeLink([])
    ch = claimed_channel(link)

    async def body() -> None:
        assert await ch.request("run:reports", END_FRAME) == {"replies": ["ok"]}
        await ch.leave()

    run(body)
    assert link.joined_with == [{"token": "tok", "reports": END_FRAME["reports"], "leave": True}]
    assert link.calls == [("join", "run:r1"), ("forget", "run:r1")]  # no phx_leave


def test_a_refused_last_frame_leaves_as_usual() -> None:
    link = FakeLink([])
    link.frame_reply = {"status": "error", "response": {"reason": "busy"}}
    ch = claimed_channel(link)

    async def body() -> None:
        with pytest.raises(RefusedError):
            await ch.request("run:reports", END_FRAME)
        await ch.leave()

    run(body)
    assert link.calls == [("join", "run:r1"), ("leave", "run:r1")]
