"""Claiming: capacity is never exceeded under a burst; a run whose token does not verify is
refused while the worker serves the others; a worker with the wrong secret is refused by the
server and says so plainly (spec §1.7, §3.2, §10.3)."""

from __future__ import annotations

import logging
import time

import pytest

from fulmen.config import Secret
from fulmen.keys import generate, load_private_key
from fulmen.tokens import mint_run_token
from fulmen_testing.worker import (
    Lightning,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

NAP = plan(
    job("nap", "import time\n@fn\ndef nap(state):\n    time.sleep(0.15)\n    return state\n")
)
QUICK = plan(job("quick", "fn(lambda s: {**s, 'data': {'done': True}})\n"))


def server(**options: object) -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key(), **options)  # type: ignore[arg-type]


def test_a_burst_never_takes_more_runs_than_slots() -> None:
    capacity = 3

    async def body() -> None:
        async with server() as lightning, running(settings_for(lightning, capacity=capacity)):
            for i in range(10):  # each enqueue pushes work-available: a burst of nudges
                lightning.enqueue(ScriptedRun(f"burst-{i}", NAP))
            for i in range(10):
                assert (await lightning.completed(f"burst-{i}"))["reason"] == "success"
            assert all(held + demand <= capacity for demand, held in lightning.claims)
            assert max_concurrent(lightning) == capacity  # and the slots were used

    scenario(body)


def max_concurrent(lightning: Lightning) -> int:
    """Most runs between their join and their run:complete at any one time."""
    running_now = peak = 0
    for event in lightning.events:
        if event.topic.startswith("run:") and event.event == "phx_join":
            running_now += 1
        elif event.event == "run:complete":
            running_now -= 1
        peak = max(peak, running_now)
    return peak


def test_runs_with_bad_tokens_are_refused_and_the_others_served() -> None:
    other_key = load_private_key(generate().private_key)
    now = time.time()
    bad_tokens = {
        "forged": mint_run_token(other_key, "forged", now=now, run_timeout=60),
        "expired": mint_run_token(private_key(), "expired", now=now - 1000, run_timeout=1),
        "elsewhere": mint_run_token(private_key(), "another-run", now=now, run_timeout=60),
        "garbage": "x.y.z",
    }

    async def body() -> None:
        # Up to four refusals may come in a row here; three stop claiming by default
        # (test_worker_refusals.py), so this worker allows one more than there are.
        limit = len(bad_tokens) + 1
        async with (
            server() as lightning,
            running(settings_for(lightning, capacity=2, refusal_limit=limit)) as worker,
        ):
            lightning.enqueue(ScriptedRun("good-1", QUICK))
            for run_id, token in bad_tokens.items():
                lightning.enqueue(ScriptedRun(run_id, QUICK, token=token))
            lightning.enqueue(ScriptedRun("good-2", QUICK))
            assert (await lightning.completed("good-1"))["reason"] == "success"
            assert (await lightning.completed("good-2"))["reason"] == "success"
            for run_id in bad_tokens:
                assert lightning.of_run(run_id) == []  # never joined, fetched or run
            text = worker.metrics.render().decode()
            for code in ("bad_signature", "expired", "wrong_run", "malformed"):
                assert f'fulmen_worker_runs_refused_total{{code="{code}"}} 1.0' in text

    scenario(body)


@pytest.mark.parametrize("checked_at", ["connect", "join"])
def test_a_wrong_worker_secret_is_refused_and_reported_plainly(
    checked_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fulmen.worker")

    async def body() -> None:
        async with server(check_token_at=checked_at) as lightning:
            settings = settings_for(lightning, secret=Secret("WORKER_SECRET", "w" * 44))
            async with running(settings, ready=False):
                if checked_at == "connect":
                    await lightning.wait_for(lambda: lightning.refused_upgrades >= 2)
                else:
                    await lightning.wait_for(lambda: lightning.refused_joins >= 1)
            assert not lightning.named("claim")

    scenario(body)
    messages = [r.getMessage() for r in caplog.records]
    plain = {
        "connect": "refused the worker token (HTTP 401): is WORKER_SECRET the same there?",
        "join": "refused this worker (unauthorized): is WORKER_SECRET the same there?",
    }[checked_at]
    assert any("the coordinator at ws://127.0.0.1:" in m and plain in m for m in messages)
