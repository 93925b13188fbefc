"""End to end (issue 14): a worker given the wrong public key, as real processes on loopback.

It claims the waiting run, refuses it (its run token does not verify with that key) and
tells the coordinator, which puts the run back at once and notes the refusal on it; after
three refusals in a row the worker stops claiming, says so in one line, and is unhealthy on
``/healthz`` and ``/metrics``. The run's log, through the API and on the dashboard's run
page, says which worker refused it and why. A correctly configured worker then completes it,
and the misconfigured one, although it hears of work, claims nothing more.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import httpx2
import pytest

from fulmen import keys as keyring
from fulmen_testing.e2e import Api, WorkerProcess, system

pytestmark = pytest.mark.anyio

DONE = "fn(lambda s: {**s, 'data': {**s['data'], 'done': True}})\n"
REFUSED = "refused: its run token is not valid"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def run_page(api: Api, base_url: str, run_id: str) -> str:
    """The dashboard's page of the run, signed in with the API token as a user would."""
    token = api.headers["Authorization"].removeprefix("Bearer ")
    async with httpx2.AsyncClient(base_url=base_url, timeout=30) as browser:
        signed = await browser.post(
            "/ui/login", data={"token": token, "next": "/ui/runs"}, headers={"Origin": base_url}
        )
        assert signed.status_code == 303, signed.text
        page = await browser.get(f"/ui/runs/{run_id}")
        assert page.status_code == 200
        return html.unescape(page.text)


async def test_a_worker_with_the_wrong_public_key_stops_and_the_run_says_why(
    tmp_path: Path,
) -> None:
    wrong_key = keyring.generate().public_key
    async with system(tmp_path, with_worker=False) as (coordinator, _, api):
        _, hook = await api.workflow({"only": DONE}, [])
        run_id = await api.hook(hook, {"n": 1})
        misconfigured = await WorkerProcess.start(
            coordinator,
            settings={
                "WORKER_LIGHTNING_PUBLIC_KEY": wrong_key,
                "WORKER_NAME": "misconfigured",
                "WORKER_REFUSAL_LIMIT": "3",
            },
        )
        good: WorkerProcess | None = None
        try:
            output = misconfigured.output
            stopped = await output.wait_for(r"claiming stopped: .*")
            port = (await output.wait_for(r"health on http://127\.0\.0\.1:(\d+)")).group(1)
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                health = await probe.get("/healthz")
                metrics = (await probe.get("/metrics")).text.splitlines()
            waiting = await api.run(run_id)
            notes = [line for line in await api.logs(run_id) if line["source"] == "FULMEN"]
            page = await run_page(api, coordinator.base_url, run_id)

            good = await WorkerProcess.start(coordinator, settings={"WORKER_NAME": "good"})
            done = await api.finished(run_id)
            # The good worker's claim pushed work-available to both; the stopped one claimed
            # nothing, and its slot stays free: still three refusals, no fourth.
            refusals = output.count(REFUSED)
        finally:
            await misconfigured.kill()
            if good is not None:
                await good.kill()

    # The worker: one line saying what is wrong and what to do; unhealthy, but alive.
    line = stopped.group(0)
    assert "3 run tokens in a row did not verify (bad_signature" in line
    assert "WORKER_LIGHTNING_PUBLIC_KEY" in line and "does not match" in line
    assert output.count(r"claiming stopped") == 1
    assert refusals == 3
    assert health.status_code == 503
    problem = json.loads(health.text)
    assert problem["status"] == "unhealthy" and "WORKER_LIGHTNING_PUBLIC_KEY" in problem["problem"]
    assert "fulmen_worker_claiming_stopped 1.0" in metrics
    assert 'fulmen_worker_runs_refused_total{code="bad_signature"} 3.0' in metrics

    # The run: back in the queue, each refusal noted with its reason, in the API and the page.
    assert (waiting["state"], waiting["worker_name"]) == ("available", None)
    assert len(notes) == 3
    for note in notes:
        assert note["level"] == "warn"
        assert (
            " refused this run: its run token did not verify there (bad_signature)"
            in (note["message"])
        )
        assert "WORKER_LIGHTNING_PUBLIC_KEY" in note["message"]
        assert note["message"] in page

    # …and then done by a worker with the right key.
    assert (done["state"], done["worker_name"]) == ("success", "good")
