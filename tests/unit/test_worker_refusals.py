"""Run tokens refused in a row (issue 14): when a worker stops claiming, what it says, how it
probes and resumes; and a claim loop that obeys. The clock is a fake one; the loop's backoff
is set to minutes, so every claim after the first comes from a nudge, never a timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from fulmen.contract import ClaimedRun, ClaimReply, ClaimRequest
from fulmen.errors import TokenError
from fulmen.worker.refusals import Refusals
from fulmen.worker.workloop import Workloop, WorkloopSpec

BAD_KEY = TokenError("the token's signature does not verify", code="bad_signature")
EXPIRED = TokenError("the token has expired", code="expired")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusals(limit: int = 3, retry_after: float = 600.0) -> tuple[Refusals, Clock, list[str]]:
    clock, resumed = Clock(), []
    made = Refusals(limit, retry_after, on_resume=lambda: resumed.append("resumed"), clock=clock)
    return made, clock, resumed


# -- the rule ---------------------------------------------------------------------------------


def test_claiming_stops_at_the_limit_in_a_row_with_one_line_saying_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard, _, _ = refusals(limit=3)
    with caplog.at_level(logging.ERROR, logger="fulmen.worker"):
        assert [guard.refused(BAD_KEY) for _ in range(4)] == [False, False, True, False]
    assert guard.stopped and guard.in_a_row == 4
    [line] = caplog.messages  # the stop is said once, not once per refusal after it
    assert line.startswith("claiming stopped: 3 run tokens in a row did not verify")
    assert "(bad_signature: the token's signature does not verify)" in line
    assert "WORKER_LIGHTNING_PUBLIC_KEY" in line and "does not match" in line
    assert line.endswith("; one claim is tried again every 600s")
    assert guard.problem is not None and "WORKER_LIGHTNING_PUBLIC_KEY" in guard.problem


def test_only_refusals_in_a_row_count() -> None:
    guard, _, resumed = refusals(limit=3)
    for _ in range(10):  # a forged run now and then, among good ones
        guard.refused(BAD_KEY)
        guard.refused(BAD_KEY)
        assert guard.verified() is False
    assert not guard.stopped and guard.in_a_row == 0 and guard.problem is None
    assert resumed == []


def test_clock_trouble_is_named_as_such() -> None:
    guard, _, _ = refusals(limit=1)
    guard.refused(EXPIRED)
    assert guard.problem is not None and "clock" in guard.problem


def test_a_probe_is_due_each_period_and_only_one_at_a_time() -> None:
    guard, clock, _ = refusals(limit=1, retry_after=600)
    guard.refused(BAD_KEY)
    assert not guard.probe_due() and guard.seconds_to_probe() == 600
    clock.now += 600
    assert guard.probe_due() and guard.seconds_to_probe() == 0
    guard.start_probe()
    assert not guard.probe_due() and guard.seconds_to_probe() is None
    guard.probe_came_back_empty()  # the queue was empty: probe again at the next claim
    assert guard.probe_due()
    guard.start_probe()
    guard.refused(BAD_KEY)  # still wrong: a whole period again
    assert guard.stopped and not guard.probe_due() and guard.seconds_to_probe() == 600


def test_a_verified_token_resumes_claiming() -> None:
    guard, clock, resumed = refusals(limit=1, retry_after=600)
    guard.refused(BAD_KEY)
    clock.now += 600
    guard.start_probe()
    assert guard.verified() is True
    assert not guard.stopped and guard.problem is None and resumed == ["resumed"]


def test_without_retries_only_a_restart_helps(caplog: pytest.LogCaptureFixture) -> None:
    guard, clock, _ = refusals(limit=1, retry_after=0)
    with caplog.at_level(logging.ERROR, logger="fulmen.worker"):
        guard.refused(BAD_KEY)
    clock.now += 10**9
    assert not guard.probe_due() and guard.seconds_to_probe() is None
    assert caplog.messages[0].endswith("; claiming again needs a restart")


# -- the claim loop ---------------------------------------------------------------------------


class Server:
    """A fake ``claim`` handing out one run per request while it has ``available`` runs."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.requests: list[ClaimRequest] = []
        self.changed = asyncio.Event()

    async def claim(self, request: ClaimRequest) -> ClaimReply:
        self.requests.append(request)
        self.changed.set()
        if not self.available:
            return ClaimReply(())
        self.available -= 1
        return ClaimReply((ClaimedRun(f"r{len(self.requests)}", "t"),))

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed.clear()
            await self.changed.wait()


class Joined:
    ready = True

    async def wait_ready(self) -> None:
        return None


@dataclass
class Tokens:
    """Whether the runs handed out now come with tokens that verify."""

    good: bool = False


def loop_scenario(
    guard: Refusals,
    tokens: Tokens,
    body: Callable[[Workloop, Server], Awaitable[None]],
    *,
    available: int,
    slots: int = 2,
) -> Server:
    """A loop whose runs end as soon as they start, verified or refused as ``tokens`` say."""

    async def main() -> Server:
        server = Server(available)

        def start(run: ClaimedRun, loop: Workloop) -> None:
            if tokens.good:
                guard.verified()
            else:
                guard.refused(BAD_KEY)
            loop.run_finished()

        loop = Workloop(
            WorkloopSpec(("manual", "*"), slots),
            claim=server.claim,
            start_run=start,
            queue=Joined(),
            worker_name="w1",
            backoff_min=600.0,
            backoff_max=600.0,
            refusals=guard,
        )
        task = asyncio.create_task(loop.run())
        async with asyncio.timeout(5):
            await body(loop, server)
            loop.stop()
            await task
        return server

    return asyncio.run(main())


def test_a_stopped_loop_claims_nothing_until_a_probe_is_due_then_one_run() -> None:
    guard, clock, _ = refusals(limit=3, retry_after=600)

    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: guard.stopped)
        assert len(server.requests) == 3  # each claim brought one run, each refused
        for _ in range(3):
            loop.work_available()  # work is waiting, but the worker claims none
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert len(server.requests) == 3
        clock.now += 600
        loop.work_available()  # wakes the nap early; the probe is due now
        await server.until(lambda: len(server.requests) == 4)
        assert server.requests[-1].demand == 1  # a probe asks for one run only

    loop_scenario(guard, Tokens(), body, available=10)


def test_a_probe_that_verifies_resumes_every_slot() -> None:
    guard, clock, _ = refusals(limit=1, retry_after=600)
    tokens = Tokens()

    async def body(loop: Workloop, server: Server) -> None:
        await server.until(lambda: guard.stopped)
        tokens.good = True
        clock.now += 600
        loop.work_available()
        await server.until(lambda: len(server.requests) == 3)  # the queue is empty now

    server = loop_scenario(guard, tokens, body, available=2)
    assert [r.demand for r in server.requests] == [2, 1, 2]
