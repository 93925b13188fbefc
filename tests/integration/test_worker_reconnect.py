"""The worker's connection over real loopback sockets: ``localhost`` whichever address the
coordinator listens on and whichever the resolver names first (§10.6); a plain message when
nothing listens; and a connection dropped mid-run, after which every event still arrives
exactly once (§1.6, issue 5)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from fulmen.worker.target import Address, Resolver, resolve
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
V4 = (socket.AF_INET, "127.0.0.1")
V6 = (socket.AF_INET6, "::1")


def resolver_answering(*addresses: Address) -> Resolver:
    async def resolve(host: str, port: int) -> list[Address]:
        assert host == "localhost"
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("listen", "answer"),
    [
        ("127.0.0.1", None),  # the system resolver, as it is
        ("127.0.0.1", (V6, V4)),  # Node 17's trap: ::1 first, coordinator on IPv4 only
        ("::1", (V4, V6)),  # IPv4 first, coordinator on IPv6 only
    ],
)
def test_localhost_reaches_the_coordinator_on_either_family(
    listen: str, answer: tuple[Address, ...] | None
) -> None:
    async def body() -> None:
        async with Lightning(
            secret=keys().worker_secret, private_key=private_key(), host=listen
        ) as lightning:
            url = f"ws://localhost:{lightning.port}/worker"
            settings = settings_for(lightning, lightning_url=url)
            resolver = resolve if answer is None else resolver_answering(*answer)
            async with running(settings, resolver=resolver):
                lightning.enqueue(ScriptedRun("r", TWO_STEPS))
                assert (await lightning.completed("r"))["reason"] == "success"

    scenario(body)


def test_an_unreachable_coordinator_is_named_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fulmen.worker")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    async def body() -> None:
        async with Lightning(secret=keys().worker_secret, private_key=private_key()) as lightning:
            settings = settings_for(lightning, lightning_url=f"ws://localhost:{port}/worker")
            async with running(settings, resolver=resolver_answering(V6, V4), ready=False):
                await _wait_for_records(caplog, 2)

    scenario(body)
    first = caplog.records[0].getMessage()
    assert first.startswith(
        f"cannot reach the coordinator at ws://localhost:{port}/worker "
        "(127.0.0.1: connection refused; [::1]: connection refused); retrying in "
    )


async def _wait_for_records(caplog: pytest.LogCaptureFixture, count: int) -> None:
    """Wait until the worker has logged ``count`` warnings (a handler wakes us)."""
    loop = asyncio.get_running_loop()
    logged = asyncio.Event()

    class Wake(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            loop.call_soon_threadsafe(logged.set)

    handler = Wake(logging.WARNING)
    logging.getLogger("fulmen.worker").addHandler(handler)
    try:
        while len(caplog.records) < count:
            logged.clear()
            await logged.wait()
    finally:
        logging.getLogger("fulmen.worker").removeHandler(handler)


@pytest.mark.parametrize("lost", ["run:log", "step:complete", "run:complete"])
def test_a_dropped_connection_loses_no_event_and_duplicates_none(lost: str) -> None:
    async def body() -> list[Recorded]:
        async with Lightning(secret=keys().worker_secret, private_key=private_key()) as lightning:
            lightning.drop_when = lambda e: e.event == lost  # the first one is lost in transit
            async with running(settings_for(lightning)):
                lightning.enqueue(ScriptedRun("r", TWO_STEPS))
                complete = await lightning.completed("r")
                assert complete["reason"] == "success"
                assert complete["final_state"] == {"data": {"a": 1, "b": 2}}
            assert lightning.drops == 1
            return lightning.of_run("r")

    events = scenario(body)
    joins = [e for e in events if e.event == "phx_join"]
    assert len(joins) == 2 and joins[0].conn != joins[1].conn  # rejoined on the new socket
    sent = [(e.event, json.dumps(e.payload, sort_keys=True)) for e in events]
    others = [s for s in sent if s[0] != "phx_join"]
    assert len(others) == len(set(others)), "an event was recorded twice"
    names = [name for name, _ in others]
    assert names.count("step:start") == names.count("step:complete") == 2
    assert names.count("run:start") == names.count("run:complete") == 1
    messages = [json.loads(p)["message"] for n, p in others if n == "run:log"]
    assert ["in a"] in messages and ["in b"] in messages
    assert ["Memory limit: 500mb"] in messages
