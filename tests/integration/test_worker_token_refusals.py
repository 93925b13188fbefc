"""A worker whose run tokens keep failing stops claiming (issue 14), against a scripted
Lightning on loopback: it says so on ``/healthz`` and ``/metrics``, and tells Lightning
nothing (Lightning has no ``run:refuse``, and an unknown event would crash its channel); a
bad token now and then never stops it; a probe whose token verifies lets it claim again.

The Fulmen coordinator's side (the refusal it is told, the note on the run) is in
tests/acceptance/test_e2e_refusals.py, with real processes."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable

from fulmen.config import Secret
from fulmen.keys import GeneratedKeys, generate, load_private_key
from fulmen.tokens import mint_run_token
from fulmen.worker import Worker
from fulmen_testing.worker import (
    Lightning,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
)
from fulmen_testing.worker import settings_for as base_settings

QUICK = plan(job("quick", "fn(lambda s: {**s, 'data': {'done': True}})\n"))


@functools.cache
def other_keys() -> GeneratedKeys:
    return generate()


def server() -> Lightning:
    return Lightning(secret=keys().worker_secret, private_key=private_key())


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll a worker-side condition (the worker runs in this event loop; nothing to await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        await asyncio.sleep(0.01)


def healthz(worker: Worker) -> tuple[int, dict[str, object]]:
    status, _, body = worker.health.respond("GET", "/healthz")
    return status, json.loads(body)


def test_a_worker_with_the_wrong_public_key_stops_claiming_and_tells_lightning_nothing() -> None:
    async def body() -> None:
        async with server() as lightning:
            wrong_key = Secret("WORKER_LIGHTNING_PUBLIC_KEY", other_keys().public_key)
            settings = base_settings(lightning, public_key=wrong_key, refusal_limit=3)
            async with running(settings) as worker:
                for i in range(5):
                    lightning.enqueue(ScriptedRun(f"run-{i}", QUICK))
                await until(lambda: worker.refusals.stopped, "claiming stopped")
                status, summary = healthz(worker)
                metrics = worker.metrics.render().decode().splitlines()

        assert lightning.handed_out == ["run-0", "run-1", "run-2"]
        assert [e.event for e in lightning.events if e.topic != "worker:queue"] == []
        assert not lightning.named("run:refuse")  # Lightning takes no such event
        assert status == 503 and summary["status"] == "unhealthy"
        problem = str(summary["problem"])
        assert problem.startswith("claiming stopped: 3 run tokens in a row did not verify")
        assert "WORKER_LIGHTNING_PUBLIC_KEY" in problem
        assert "fulmen_worker_claiming_stopped 1.0" in metrics
        assert "fulmen_worker_runs_refused_in_a_row 3.0" in metrics

    scenario(body)


def test_bad_tokens_now_and_then_never_stop_a_worker() -> None:
    forged_with = load_private_key(other_keys().private_key)

    def forged(run_id: str) -> ScriptedRun:
        token = mint_run_token(forged_with, run_id, now=time.time(), run_timeout=60)
        return ScriptedRun(run_id, QUICK, token=token)

    async def body() -> None:
        async with (
            server() as lightning,
            running(base_settings(lightning, refusal_limit=2)) as worker,
        ):
            for i in range(4):  # one slot: bad, good, bad, good, … in this order
                lightning.enqueue(forged(f"bad-{i}"))
                lightning.enqueue(ScriptedRun(f"good-{i}", QUICK))
            for i in range(4):
                assert (await lightning.completed(f"good-{i}"))["reason"] == "success"
            assert not worker.refusals.stopped
            assert healthz(worker)[0] == 200

    scenario(body)


def test_a_probe_whose_token_verifies_lets_the_worker_claim_again() -> None:
    forged_with = load_private_key(other_keys().private_key)

    async def body() -> None:
        async with server() as lightning:
            settings = base_settings(lightning, refusal_limit=2, refusal_retry=0.05)
            async with running(settings) as worker:
                for i in range(2):
                    token = mint_run_token(forged_with, f"bad-{i}", now=time.time(), run_timeout=60)
                    lightning.enqueue(ScriptedRun(f"bad-{i}", QUICK, token=token))
                await until(lambda: worker.refusals.in_a_row == 2, "two refusals")
                for i in range(3):  # e.g. the coordinator's keys were put right
                    lightning.enqueue(ScriptedRun(f"good-{i}", QUICK))
                for i in range(3):
                    assert (await lightning.completed(f"good-{i}"))["reason"] == "success"
                assert not worker.refusals.stopped
                status, summary = healthz(worker)
                assert (status, summary["status"]) == (200, "ok")

    scenario(body)
