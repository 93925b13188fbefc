"""A short run in two round trips (issue 20), through a real socket on loopback: a claim that
asks (``claim:fetch``) gets each run's plan and input with its token and joins the run; the
run's whole report then goes inside its channel's join (``phx_join:reports``). A join sent
again stores nothing twice; a bad frame inside a join is refused alone; a run joined by its
claim still goes back to the queue when refused or when the claim's answer is lost, and never
to the reaper's sweep of unjoined claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fulmen.lifecycle import RunState
from fulmen_testing.coordinator import RawWorker, SocketWorld
from fulmen_testing.coordinator.reports import a_whole_frame, messages

pytestmark = pytest.mark.anyio

FETCH = {"fetch": ["plan", "dataclip"]}
REFUSAL = {"code": "bad_signature", "message": "the token's signature does not verify"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_claim_that_asks_brings_plan_and_input_and_joins_the_run(
    world: SocketWorld,
) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, entry = await world.claim(worker, **FETCH)
        topic = f"run:{run_id}"
        assert sorted(entry) == ["dataclip", "id", "plan", "token"]
        memories = world.served.coordinator.memories
        assert memories(run_id).plan == entry["plan"]  # kept for the join, which takes it
        assert await worker.join(topic, {"token": entry["token"]}) == ("ok", {})
        assert memories(run_id).plan is None  # memory holds no plan of a joined run
        assert await worker.call(topic, "fetch:plan", {}) == ("ok", entry["plan"])
        status, body = await worker.call(topic, "fetch:dataclip", {"id": "any"})
        assert status == "ok" and json.loads(body) == entry["dataclip"]
        assert entry["dataclip"]["data"] == {"n": 1}

        plain_id, plain = await world.claim(worker)  # as ws-worker claims: nothing more
        assert sorted(plain) == ["id", "token"]
    joined = await world.store.peek_run(run_id)
    assert joined.joined_at is not None and joined.joined_at == joined.claimed_at
    assert (await world.store.peek_run(plain_id)).joined_at is None


async def test_a_short_runs_report_inside_its_join_is_stored_once(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, entry = await world.claim(worker, **FETCH)
        frame = a_whole_frame(run_id, world.seeded.job_ids[0])
        status, answer = await worker.join(
            f"run:{run_id}", {"token": entry["token"], "reports": frame}
        )
        assert status == "ok" and list(answer) == ["reports"]
        assert answer["reports"]["status"] == "ok"
        assert [r["status"] for r in answer["reports"]["response"]["replies"]] == ["ok"] * 8

        # The answer was lost (say): the worker joins again with the same frame.
        assert await world.rejoin(worker, run_id, reports=frame) == answer
    detail = await world.store.get_run(run_id)
    assert detail.run.state == "success" and len(detail.steps) == 1
    assert len(await messages(world, run_id)) == 5


async def test_a_join_whose_frame_ends_the_run_can_close_the_channel_with_its_answer(
    world: SocketWorld,
) -> None:
    """``RunJoin.leave``: no ``phx_leave`` follows such a join; the channel is gone at once."""
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, entry = await world.claim(worker, **FETCH)
        topic = f"run:{run_id}"
        frame = a_whole_frame(run_id, world.seeded.job_ids[0])
        status, answer = await worker.join(
            topic, {"token": entry["token"], "reports": frame, "leave": True}
        )
        assert status == "ok" and answer["left"] is True
        assert answer["reports"]["status"] == "ok"
        assert await worker.call(topic, "fetch:plan", {}) == (
            "error",
            {"reason": "unmatched topic"},
        )
    assert (await world.store.get_run(run_id)).run.state == "success"


async def test_a_bad_frame_inside_a_join_is_refused_alone_and_the_join_stands(
    world: SocketWorld,
) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, entry = await world.claim(worker, **FETCH)
        topic = f"run:{run_id}"
        bad = [{"event": "fetch:plan", "payload": {}}]
        status, answer = await worker.join(topic, {"token": entry["token"], "reports": bad})
        assert status == "ok"
        assert answer["reports"]["status"] == "error"
        assert list(answer["reports"]["response"]) == ["reports[0].event"]
        assert (await world.store.get_run(run_id)).run.state == "claimed"

        frame = a_whole_frame(run_id, world.seeded.job_ids[0])  # joined: report as usual
        status, reply = await worker.call(topic, "run:reports", {"reports": frame})
        assert status == "ok", reply
    assert (await world.store.get_run(run_id)).run.state == "success"


async def test_a_join_with_a_frame_and_a_bad_token_stores_nothing(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, _entry = await world.claim(worker, **FETCH)
        frame = a_whole_frame(run_id, world.seeded.job_ids[0])
        refused = await worker.join(f"run:{run_id}", {"token": "not.a.token", "reports": frame})
    assert refused == ("error", {"reason": "unauthorized"})
    assert (await world.store.get_run(run_id)).run.state == "claimed"
    assert await messages(world, run_id) == []


async def test_a_run_joined_by_its_claim_goes_back_when_refused(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, entry = await world.claim(worker, **FETCH)
        answer = await worker.call(
            "worker:queue", "run:refuse", {"id": run_id, "token": entry["token"], **REFUSAL}
        )
        assert answer == ("ok", {"returned": True})
        run = await world.store.peek_run(run_id)
        assert (run.state, run.joined_at) == (RunState.AVAILABLE, None)

        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"], **FETCH}
        )
        assert status == "ok" and [r["id"] for r in reply["runs"]] == [run_id]


async def test_a_run_joined_by_its_claim_is_not_the_reapers_but_a_lost_answer_returns_it(
    world: SocketWorld,
) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, _entry = await world.claim(worker, **FETCH)
        channel_joined_id, plain = await world.claim(worker)
        assert await worker.join(f"run:{channel_joined_id}", {"token": plain["token"]}) == (
            "ok",
            {},
        )
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await world.store.rollback_unjoined(later) == []  # both are joined
    # The claim's answer could not be sent (queue.py's roll-back): it goes back, while the
    # run whose worker joined its channel itself stays.
    assert await world.store.rollback_claims([run_id, channel_joined_id]) == [run_id]
    run: Any = await world.store.peek_run(run_id)
    assert (run.state, run.claimed_at, run.joined_at) == (RunState.AVAILABLE, None, None)
