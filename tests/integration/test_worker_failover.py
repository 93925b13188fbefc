"""A worker given several coordinator URLs (replicas sharing a database, issue 14), over real
loopback sockets: when the coordinator it is on goes down for good, it reconnects to another,
rejoins its run there and resends what was not answered; and when none answers, one message
names every URL.

Two scripted Lightnings stand in for the replicas; "sharing a database" is the second one
knowing the first one's run. ``tests/acceptance/test_e2e_failover.py`` does the same with two
real ``fulmen server`` processes on one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from fulmen_testing.worker import (
    Lightning,
    Recorded,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

TWO_STEPS = plan(
    job("a", "print('in a')\nfn(lambda s: {**s, 'data': {'a': 1}})\n"),
    job("b", "print('in b')\nfn(lambda s: {**s, 'data': {**s['data'], 'b': 2}})\n"),
    edges=[{"id": "ab", "source_job_id": "a", "target_job_id": "b"}],
)
QUICK = plan(job("quick", "fn(lambda s: {**s, 'data': {'done': True}})\n"))


def server() -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key())


def test_a_coordinator_gone_for_good_hands_its_run_to_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fulmen.worker")

    async def body() -> tuple[Lightning, Lightning]:
        async with server() as one, server() as two:
            settings = settings_for(one, lightning_url=f"{one.url},{two.url}")
            async with running(settings) as worker:
                first, second = (one, two) if worker.connection.url == one.url else (two, one)
                gone: list[asyncio.Task[None]] = []

                def go_down(event: Recorded) -> bool:
                    """At the run's first step:complete, before it is answered: the
                    connection is cut and the coordinator stops listening for good."""
                    if event.event != "step:complete":
                        return False
                    gone.append(asyncio.create_task(first.__aexit__(None, None, None)))
                    return True

                first.drop_when = go_down
                run = ScriptedRun("r", TWO_STEPS)
                second.runs[run.id] = run  # the replicas share the database
                first.enqueue(run)
                complete = await second.completed("r")
                await asyncio.gather(*gone)
                assert complete["reason"] == "success"
                assert complete["final_state"] == {"data": {"a": 1, "b": 2}}

                second.enqueue(ScriptedRun("after", QUICK))  # and it keeps working
                assert (await second.completed("after"))["reason"] == "success"
                assert worker.connection.url == second.url
            return first, second

    first, second = scenario(body)
    assert first.drops == 1 and first.complete_of("r") is None
    moved = [(e.event, json.dumps(e.payload, sort_keys=True)) for e in second.of_run("r")]
    names = [name for name, _ in moved]
    assert names[0] == "phx_join"  # rejoined with its run token on the other replica
    assert names.count("step:complete") == 2  # the unanswered one, resent, then b's
    assert names.count("run:complete") == 1
    assert len(moved) == len(set(moved)), "an event was sent twice to the second replica"
    lines = caplog.text
    assert f"lost the connection to {first.url}" in lines
    assert f"connected to the coordinator at {second.url}" in lines


def test_when_no_coordinator_answers_one_message_names_them_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fulmen.worker")
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])  # closed again: nothing listens there
    urls = [f"ws://127.0.0.1:{port}/worker" for port in ports]

    async def body() -> None:
        async with server() as lightning:
            settings = settings_for(lightning, lightning_url=",".join(urls))
            async with running(settings, ready=False):
                await _wait_for_a_warning()

    scenario(body)
    assert (
        caplog.records[0]
        .getMessage()
        .startswith(
            f"cannot reach any coordinator ({urls[0]}: 127.0.0.1: connection refused | "
            f"{urls[1]}: 127.0.0.1: connection refused); retrying in "
        )
    )


async def _wait_for_a_warning() -> None:
    """Until the worker logs a warning (a handler wakes us)."""
    loop = asyncio.get_running_loop()
    logged = asyncio.Event()

    class Wake(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            loop.call_soon_threadsafe(logged.set)

    handler = Wake(logging.WARNING)
    logging.getLogger("fulmen.worker").addHandler(handler)
    try:
        await logged.wait()
    finally:
        logging.getLogger("fulmen.worker").removeHandler(handler)
