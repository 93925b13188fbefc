"""Workloops: parsing ``--workloops``, the capacity counter, and the claim loop against a fake
``claim``. The loop's backoff is set to minutes, so every claim after the first must come
from ``work-available`` or a finished run: nothing here waits on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fulmen.contract import ClaimedRun, ClaimReply, ClaimRequest
from fulmen.errors import ConfigError, NoReplyError
from fulmen.worker.workloop import (
    Capacity,
    Workloop,
    WorkloopSpec,
    default_workloops,
    duplicates,
    parse_workloops,
    queue_join,
)

# -- parsing ----------------------------------------------------------------------------------


def test_parse_the_examples_of_the_spec() -> None:
    assert parse_workloops("fast_lane:1 manual>*:4") == (
        WorkloopSpec(("fast_lane",), 1),
        WorkloopSpec(("manual", "*"), 4),
    )
    assert parse_workloops("*:5") == (WorkloopSpec(("*",), 5),)
    assert parse_workloops("  a>b_2>*:3  ") == (WorkloopSpec(("a", "b_2", "*"), 3),)


def test_capacity_means_one_manual_then_any_loop() -> None:
    assert default_workloops(5) == (WorkloopSpec(("manual", "*"), 5),)
    assert str(default_workloops(5)[0]) == "manual>*:5"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "at least one group"),
        ("manual", "<queue>"),
        (":3", "<queue>"),
        ("manual:x", "whole number"),
        ("manual:0", "at least 1 slot"),
        ("*>manual:2", "'*' only as the last"),
        ("man-ual:2", "letters, digits and _"),
        ("a>>b:2", "letters, digits and _"),
    ],
)
def test_bad_workloops_name_the_variable_and_the_group(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_workloops(text, variable="--workloops")
    assert error.value.code == "bad_workloops"
    assert error.value.message.startswith("--workloops: ")
    assert problem in error.value.message


def test_join_payload_and_duplicates() -> None:
    loops = parse_workloops("fast_lane:1 manual>*:4 fast_lane:2")
    assert queue_join(loops).to_wire() == {
        "capacity": 7,
        "queues": {"fast_lane": 3, "manual>*": 4},
    }
    assert duplicates(loops) == ["fast_lane"]


# -- capacity ---------------------------------------------------------------------------------


def test_a_claim_reserves_every_free_slot_and_keeps_at_most_that() -> None:
    capacity = Capacity(4)
    capacity.active = 1
    assert capacity.reserve() == 3
    assert capacity.free() == 0
    assert capacity.reserve() == 0  # nothing left for a second claim in flight
    assert capacity.settle(3, received=5) == 3  # never more runs than slots
    assert (capacity.active, capacity.pending, capacity.free()) == (4, 0, 0)
    capacity.release()
    assert capacity.free() == 1


def test_an_empty_claim_frees_its_reservation() -> None:
    capacity = Capacity(2)
    demand = capacity.reserve()
    assert capacity.settle(demand, received=0) == 0
    assert capacity.free() == 2


# -- the loop ---------------------------------------------------------------------------------


class Server:
    """A fake ``claim``: answers from a script, records each request, wakes waiters."""

    def __init__(self, replies: list[int | Exception]) -> None:
        self.replies = replies
        self.requests: list[ClaimRequest] = []
        self.changed = asyncio.Event()
        self.started: list[str] = []
        self._ids = iter(range(1000))

    async def claim(self, request: ClaimRequest) -> ClaimReply:
        self.requests.append(request)
        self.changed.set()
        reply = self.replies.pop(0) if self.replies else 0
        if isinstance(reply, Exception):
            raise reply
        return ClaimReply(tuple(ClaimedRun(f"r{next(self._ids)}", "t") for _ in range(reply)))

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed.clear()
            await self.changed.wait()


class Joined:
    """``worker:queue``, joined throughout."""

    ready = True

    async def wait_ready(self) -> None:
        return None


def scenario(
    slots: int, replies: list[int | Exception], body: Callable[[Workloop, Server], Awaitable[Any]]
) -> Server:
    async def main() -> Server:
        server = Server(replies)
        loop = Workloop(
            WorkloopSpec(("manual", "*"), slots),
            claim=server.claim,
            start_run=lambda run, lp: server.started.append(run.id),
            queue=Joined(),
            worker_name="w1",
            backoff_min=600.0,
            backoff_max=600.0,
        )
        task = asyncio.create_task(loop.run())
        async with asyncio.timeout(5):
            await body(loop, server)
            loop.stop()
            await task
        return server

    return asyncio.run(main())


def test_the_first_claim_asks_for_every_slot_with_the_loops_queues() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.requests) == 1)

    server = scenario(3, [0], body)
    assert server.requests[0] == ClaimRequest(3, "w1", ("manual", "*"), languages=("python",))
    assert server.requests[0].to_wire() == {
        "demand": 3,
        "worker_name": "w1",
        "queues": ["manual", "*"],
        "languages": ["python"],  # the languages it runs; Lightning ignores the field
    }


def test_a_claim_without_languages_is_from_a_worker_that_runs_javascript_only() -> None:
    """OpenFn's ws-worker says nothing of languages: every job it runs is JavaScript."""
    ws_worker = ClaimRequest.from_wire({"demand": 1, "worker_name": None, "queues": ["*"]})
    fulmen = ClaimRequest.from_wire({"demand": 1, "languages": ["python", "javascript"]})

    assert ws_worker.runs_languages == ("javascript",)
    assert fulmen.runs_languages == ("python", "javascript")


def test_runs_received_are_started_and_the_loop_claims_the_rest_at_once() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.requests) == 2)

    server = scenario(3, [1, 0], body)
    assert [r.demand for r in server.requests] == [3, 2]
    assert server.started == ["r0"]


def test_a_full_loop_never_claims_until_a_run_finishes() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.started) == 2)
        loop.work_available()  # full: must not claim
        await asyncio.sleep(0)
        assert len(server.requests) == 1
        loop.run_finished()
        await server.until(lambda: len(server.requests) == 2)

    server = scenario(2, [5, 0], body)
    assert [r.demand for r in server.requests] == [2, 1]
    assert server.started == ["r0", "r1"]  # 5 offered, 2 slots: 2 kept


def test_work_available_cuts_the_backoff_short() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.requests) == 1)
        loop.work_available()
        await server.until(lambda: len(server.requests) == 2)

    server = scenario(1, [0, 1], body)
    assert server.started == ["r0"]


def test_a_failed_claim_counts_as_empty() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.requests) == 1)
        assert loop.capacity.free() == 1
        loop.work_available()
        await server.until(lambda: len(server.requests) == 2)

    server = scenario(1, [NoReplyError("gone", code="disconnected"), 1], body)
    assert server.started == ["r0"]


def test_stop_ends_the_loop_during_its_backoff() -> None:
    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: len(server.requests) == 1)

    server = scenario(1, [0], body)  # returns only if stop() woke the 600 s nap
    assert len(server.requests) == 1


class Unjoined:
    """``worker:queue``, not joined until :meth:`join`."""

    def __init__(self) -> None:
        self._joined = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._joined.is_set()

    async def wait_ready(self) -> None:
        await self._joined.wait()

    def join(self) -> None:
        self._joined.set()


def unjoined_loop(server: Server, queue: Unjoined) -> Workloop:
    return Workloop(
        WorkloopSpec(("manual", "*"), 1),
        claim=server.claim,
        start_run=lambda run, lp: server.started.append(run.id),
        queue=queue,
        worker_name="w1",
        backoff_min=600.0,
        backoff_max=600.0,
    )


def test_no_claim_goes_out_before_the_queue_is_joined() -> None:
    async def main() -> list[ClaimRequest]:
        server, queue = Server([0]), Unjoined()
        loop = unjoined_loop(server, queue)
        task = asyncio.create_task(loop.run())
        async with asyncio.timeout(5):
            await asyncio.sleep(0)  # the loop runs up to its wait for the join
            assert server.requests == []
            queue.join()
            await server.until(lambda: len(server.requests) == 1)
            loop.stop()
            await task
        return server.requests

    assert len(asyncio.run(main())) == 1


def test_stop_ends_a_loop_waiting_for_the_join() -> None:
    async def main() -> None:
        server = Server([])
        loop = unjoined_loop(server, Unjoined())
        task = asyncio.create_task(loop.run())
        async with asyncio.timeout(5):
            await asyncio.sleep(0)  # the loop runs up to its wait for the join
            loop.stop()
            await task
        assert server.requests == []

    asyncio.run(main())
