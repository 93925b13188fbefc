"""``run:reports`` (issue 20): several reports of a run in one frame, through a real socket on
loopback. Each report is answered as it would have been alone; a frame sent again, to this
coordinator or to a new one on the same file, stores nothing twice; a bad frame stores
nothing and names what is wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import pytest

from fulmen.errors import StoreError
from fulmen.store import SQLStore
from fulmen_testing.coordinator import RawWorker, SocketWorld, serve
from fulmen_testing.coordinator.reports import TS, a_whole_run, batch, line, messages

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_run_reported_in_two_frames_is_stored_as_if_sent_one_by_one(
    world: SocketWorld,
) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        start, end = a_whole_run(run_id, world.seeded.job_ids[0])
        status, reply = await worker.call(topic, "run:reports", start)
        assert status == "ok"
        assert reply == {
            "replies": [
                {"status": "ok", "response": {}},
                {"status": "ok", "response": None},
                {"status": "ok", "response": {}},
                {
                    "status": "ok",
                    "response": {"step_id": start["reports"][3]["payload"]["step_id"]},
                },
                {"status": "ok", "response": {}},
            ]
        }
        assert (await world.store.get_run(run_id)).run.state == "started"
        status, reply = await worker.call(topic, "run:reports", end)
        assert status == "ok" and [r["status"] for r in reply["replies"]] == ["ok"] * 3
    detail = await world.store.get_run(run_id)
    assert detail.run.state == "success"
    assert [step.state.value for step in detail.steps] == ["success"]
    assert await messages(world, run_id) == [
        "Memory limit: 500mb",
        "Timeout: 300s",
        "Versions: …",
        "hello from the job",
        "Run complete with status: success",
    ]


async def test_frames_sent_again_to_another_coordinator_store_nothing_twice(
    world: SocketWorld,
) -> None:
    """Each frame's reply is lost and the frame sent again to a coordinator that did not
    answer it (a restart, or another one on the same database): the state tables and the
    run's log head recognise it, not the memory of the process that stored it."""
    async with serve(world.store) as other:
        async with RawWorker.connect(world.served.socket_url) as worker:
            run_id, topic = await world.claimed(worker)
            start, end = a_whole_run(run_id, world.seeded.job_ids[0])
            first_start = await worker.call(topic, "run:reports", start)
        async with RawWorker.connect(other.socket_url) as worker:
            assert await world.rejoin(worker, run_id) == {}
            assert await worker.call(topic, "run:reports", start) == first_start
            assert len(await messages(world, run_id)) == 4
            first_end = await worker.call(topic, "run:reports", end)
        async with RawWorker.connect(world.served.socket_url) as worker:
            assert await world.rejoin(worker, run_id) == {}
            assert await worker.call(topic, "run:reports", end) == first_end
    assert first_end[0] == "ok" and [r["status"] for r in first_end[1]["replies"]] == ["ok"] * 3
    detail = await world.store.get_run(run_id)
    assert detail.run.state == "success" and len(detail.steps) == 1
    assert len(await messages(world, run_id)) == 5


async def test_a_refused_report_is_refused_alone(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        frame = {
            "reports": [
                {"event": "run:start", "payload": {"versions": {}, "timestamp": TS}},
                {
                    "event": "step:start",
                    "payload": {"step_id": str(uuid4()), "job_id": str(uuid4()), "timestamp": TS},
                },
                batch(run_id, line("still stored", 0)),
            ]
        }
        status, reply = await worker.call(topic, "run:reports", frame)
    assert status == "ok", reply
    assert [r["status"] for r in reply["replies"]] == ["ok", "error", "ok"]
    assert reply["replies"][1]["response"] == {"job_id": ["does not exist"]}
    assert (await world.store.get_run(run_id)).run.state == "started"
    assert await messages(world, run_id) == ["still stored"]


@pytest.mark.parametrize(
    ("reports", "field"),
    [
        ([], "reports"),
        ([{"event": "fetch:plan", "payload": {}}], "reports[0].event"),
        ([{"event": "run:log", "payload": {}}], "reports[0].event"),
        (
            [
                {"event": "run:start", "payload": {"versions": {}, "timestamp": TS}},
                {"event": "run:complete", "payload": {"reason": "done"}},
            ],
            "reports[1].payload.reason",
        ),
        ([{"event": "run:start", "payload": {}}] * 65, "reports"),
        ("not a list", "reports"),
    ],
)
async def test_a_bad_frame_names_its_fault_and_stores_nothing(
    world: SocketWorld, reports: Any, field: str
) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        status, reply = await worker.call(topic, "run:reports", {"reports": reports})
    assert status == "error"
    assert list(reply) == [field]
    assert (await world.store.get_run(run_id)).run.state == "claimed"
    assert await messages(world, run_id) == []


async def test_a_join_that_asks_gets_the_plan_and_input_the_fetches_would_give(
    world: SocketWorld,
) -> None:
    """``RunJoin.fetch`` (Fulmen's worker): the join's answer holds what ``fetch:plan`` and
    ``fetch:dataclip`` answer; a join that does not ask (ws-worker) gets ``{}``."""
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)  # a plain join, answered {}
        status, plan = await worker.call(topic, "fetch:plan", {})
        status, body = await worker.call(topic, "fetch:dataclip", {"id": plan["dataclip_id"]})
        assert status == "ok"
        rejoined = await world.rejoin(worker, run_id, fetch=["plan", "dataclip", "later"])
        assert rejoined == {"plan": plan, "dataclip": json.loads(body)}
        assert await world.rejoin(worker, run_id, fetch=["plan"]) == {"plan": plan}
        await world.store.wipe_dataclip(plan["dataclip_id"])
        assert await world.rejoin(worker, run_id, fetch=["dataclip"]) == {"dataclip": None}


class StoreFaults:
    """The store, except that the first ``commit_failures`` frames raise StoreError once their
    writes are in (a commit whose answer was lost), whether stored whole (``record_frame``)
    or report by report (``together``), and ``get_dataclip`` fails when told."""

    def __init__(self, store: SQLStore, commit_failures: int = 0) -> None:
        self._store = store
        self.commit_failures = commit_failures
        self.input_fails = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        async with self._store.together():
            yield
        self._commit()

    async def record_frame(self, *args: Any) -> None:
        await self._store.record_frame(*args)
        self._commit()

    def _commit(self) -> None:
        if self.commit_failures:
            self.commit_failures -= 1
            raise StoreError("the commit failed")

    async def get_dataclip(self, dataclip_id: str) -> Any:
        if self.input_fails:
            raise StoreError("the database is busy")
        return await self._store.get_dataclip(dataclip_id)


async def test_a_frame_that_fails_in_the_store_is_tried_again_and_stored_once(
    world: SocketWorld,
) -> None:
    faults = StoreFaults(world.store, commit_failures=2)
    async with (
        serve(faults) as served,  # type: ignore[arg-type]
        RawWorker.connect(served.socket_url) as worker,
    ):
        run_id, topic = await world.claimed(worker)
        start, end = a_whole_run(run_id, world.seeded.job_ids[0])
        whole = {"reports": start["reports"] + end["reports"]}
        status, reply = await worker.call(topic, "run:reports", whole)
    assert status == "ok" and [r["status"] for r in reply["replies"]] == ["ok"] * 8
    assert faults.commit_failures == 0  # failed twice, stored by the third try
    assert (await world.store.get_run(run_id)).run.state == "success"
    assert len(await messages(world, run_id)) == 5


class Writes:
    """The store, noting which of its writes of reports are called."""

    WRITES = frozenset(
        {"together", "record_frame", "start_run", "start_step", "complete_step", "complete_run"}
    )

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in self.WRITES:
            self.called.append(name)
        return getattr(self._store, name)


async def test_a_frame_whose_reports_are_all_taken_is_one_write(world: SocketWorld) -> None:
    """The hot path: a short run reported whole is one transaction that locks the run once
    (``record_frame``), not one savepoint and lock per report."""
    writes = Writes(world.store)
    async with (
        serve(writes) as served,  # type: ignore[arg-type]
        RawWorker.connect(served.socket_url) as worker,
    ):
        run_id, topic = await world.claimed(worker)
        start, _end = a_whole_run(run_id, world.seeded.job_ids[0])
        status, reply = await worker.call(topic, "run:reports", start)
        assert status == "ok" and [r["status"] for r in reply["replies"]] == ["ok"] * 5
        assert writes.called == ["record_frame"]
        writes.called.clear()
        # Its state changes again (a frame sent again): refused whole, then recognised
        # report by report.
        again = {"reports": [start["reports"][1], start["reports"][3]]}
        assert await worker.call(topic, "run:reports", again) == (
            "ok",
            {"replies": [reply["replies"][1], reply["replies"][3]]},
        )
        assert writes.called == ["record_frame", "together", "start_run", "start_step"]


async def test_a_join_whose_input_cannot_be_read_answers_without_it(world: SocketWorld) -> None:
    faults = StoreFaults(world.store)
    async with (
        serve(faults) as served,  # type: ignore[arg-type]
        RawWorker.connect(served.socket_url) as worker,
    ):
        run_id, _topic = await world.claimed(worker)
        faults.input_fails = True
        answer = await world.rejoin(worker, run_id, fetch=["plan", "dataclip"])
        assert list(answer) == ["plan"]  # the worker fetches the input, and hears why not
        status, _ = await worker.call(f"run:{run_id}", "fetch:dataclip", {"id": "x"})
        assert status == "error"
