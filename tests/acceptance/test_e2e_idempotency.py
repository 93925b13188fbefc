"""End to end (issue 14): a webhook retried with its ``Idempotency-Key`` across a coordinator
killed with SIGKILL makes one run.

* A webhook that answers after completion, killed while the client waits for its answer: the
  client sees a cut connection although the run was made and is running. The retry, to the
  coordinator started again on the same data and port, makes no second run: it waits for
  the one run and answers its outcome, marked ``Idempotent-Replayed: true``.
* A webhook answered at once, then the coordinator killed and started again: the same
  request with the same key gets the same answer, from the database, and no run.

Jobs wait at a :class:`~fulmen_testing.e2e.Gate`, so the kill happens while the run is known to be
running.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx2
import pytest

from fulmen_testing.e2e import Gate, gated_job, system

pytestmark = pytest.mark.anyio

KEY = {"Idempotency-Key": "order-2026-0042"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_cut_webhook_retried_with_its_key_after_a_kill_makes_one_run(
    tmp_path: Path,
) -> None:
    async with (
        Gate() as gate,
        system(tmp_path, worker=gate.worker_settings) as (coordinator, worker, api),
    ):
        assert worker is not None
        workflow_id, hook = await api.workflow(
            {"hold": gated_job(gate, "hold")}, [], reply="after_completion"
        )
        first = asyncio.create_task(api.http.post(f"/i/{hook}", json={"n": 1}, headers=KEY))
        await gate.reached("hold")  # the run was committed, claimed and is running

        assert await coordinator.kill() == -signal.SIGKILL
        with pytest.raises(httpx2.TransportError):
            await first  # the client cannot tell whether its run was made
        await coordinator.start()  # same port, same data directory
        retry = asyncio.create_task(api.http.post(f"/i/{hook}", json={"n": 1}, headers=KEY))
        await worker.output.wait_for(r"joined worker:queue", times=2)
        gate.release("hold")
        answer = await retry
        runs = await api.runs(workflow_id)

    assert [run["state"] for run in runs] == ["success"], runs
    assert answer.status_code == 201, answer.text
    assert answer.headers["idempotent-replayed"] == "true"
    assert answer.headers["x-run-id"] == runs[0]["id"]
    assert answer.json()["data"] == {"n": 1, "hold": True}
    assert gate.arrived == ["hold"]


async def test_a_webhook_sent_again_after_a_kill_gets_its_first_answer(tmp_path: Path) -> None:
    async with system(tmp_path, with_worker=False) as (coordinator, _, api):
        workflow_id, hook = await api.workflow({"job": "fn(lambda state: state)"}, [])
        first = await api.http.post(f"/i/{hook}", json={"n": 1}, headers=KEY)
        assert first.status_code == 200, first.text

        assert await coordinator.kill() == -signal.SIGKILL
        await coordinator.start()
        again = await api.http.post(f"/i/{hook}", json={"n": 1}, headers=KEY)
        reused = await api.http.post(f"/i/{hook}", json={"n": 2}, headers=KEY)
        runs = await api.runs(workflow_id)

    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert [run["id"] for run in runs] == [first.json()["run_id"]]
