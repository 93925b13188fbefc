"""End to end: runs survive what happens to the processes around them.

* The coordinator killed (SIGKILL) mid-run and started again on the same data and port: the
  worker keeps the events its run made meanwhile, reconnects, rejoins the run and delivers
  them; the run completes and every event is stored exactly once.
* The worker killed (SIGKILL) mid-run: its sandboxed child dies with it, and the
  coordinator's reaper marks the run ``lost`` (LostAfterStart), never leaving it ``started``.
* SIGTERM on the worker drains: the active run finishes and is stored as a success, nothing
  is claimed after the signal although a slot is free and work is waiting, and it exits 0.

Jobs wait at a :class:`~fulmen_testing.e2e.Gate`, so each process event happens while a job is
known to be running.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import Api, Gate, gated_job, system, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def logged(api: Api, run_id: str, message: str) -> list[dict[str, Any]]:
    """The run's log lines, once ``message`` is among them."""
    return await until(
        lambda: api.logs(run_id),
        lambda lines: any(line["message"] == message for line in lines),
        what=f"{message!r} logged",
    )


async def test_the_coordinator_restarted_mid_run_still_records_every_event_once(
    tmp_path: Path,
) -> None:
    async with (
        Gate() as gate,
        system(tmp_path, worker=gate.worker_settings) as (coordinator, worker, api),
    ):
        assert worker is not None
        _, hook = await api.workflow(
            {"first": gated_job(gate, "first"), "second": gated_job(gate, "second")},
            [("first", "second", "on_job_success")],
        )
        run_id = await api.hook(hook, {"n": 1})
        await gate.reached("first")
        # Everything so far is stored before the kill. A line stored whose reply was still on
        # the wire at the kill would be sent again and stored twice: the new process does not
        # know the old one's replies (coordinator/memory.py); waiting here leaves that window
        # at the few microseconds between a commit and its reply.
        await logged(api, run_id, "first waiting")

        assert await coordinator.kill() == -signal.SIGKILL
        gate.release("first")
        await gate.reached("second")  # the run went on while the coordinator was away
        await coordinator.start()  # same port, same data directory
        await worker.output.wait_for(r"joined worker:queue", times=2)
        await logged(api, run_id, "second waiting")  # what was kept has arrived
        gate.release("second")
        run = await api.finished(run_id)
        lines = await api.logs(run_id)
        final = await api.dataclip(run["final_dataclip_id"])

    assert "lost the connection" in worker.output.text()
    assert (run["state"], run["error_type"]) == ("success", None), run
    assert [(s["job_id"], s["state"]) for s in run["steps"]] == [
        ("first", "success"),
        ("second", "success"),
    ]
    assert final["data"] == {"n": 1, "first": True, "second": True}
    first, second = run["steps"]
    assert second["input_dataclip_id"] == first["output_dataclip_id"]
    assert run["final_dataclip_id"] == second["output_dataclip_id"]

    copies = Counter((line["step_id"], line["source"], line["message"]) for line in lines)
    assert [key for key, count in copies.items() if count > 1] == []
    messages = [line["message"] for line in lines]
    for expected in (
        "first waiting",
        "first through",
        "second waiting",
        "second through",
        "Run complete with status: success",
    ):
        assert messages.count(expected) == 1, (expected, messages)
    steps_of = {line["step_id"] for line in lines if line["message"].startswith("second")}
    assert steps_of == {second["id"]}


async def test_a_worker_killed_mid_run_leaves_the_run_lost(tmp_path: Path) -> None:
    reaper = {
        "WORKER_MAX_RUN_DURATION_SECONDS": "2",  # the run timeout in every plan
        "RUN_GRACE_PERIOD_SECONDS": "1",
        "FULMEN_REAPER_INTERVAL_SECONDS": "0.2",
    }
    async with (
        Gate() as gate,
        system(tmp_path, coordinator=reaper, worker=gate.worker_settings) as (_, worker, api),
    ):
        assert worker is not None
        _, hook = await api.workflow({"hang": gated_job(gate, "hang")}, [])
        run_id = await api.hook(hook, {})
        await gate.reached("hang")
        await logged(api, run_id, "hang waiting")  # its step is stored, and open

        assert await worker.kill() == -signal.SIGKILL
        assert (await api.run(run_id))["state"] == "started"
        await gate.wait(lambda g: "hang" in g.passed, what="the orphaned job ending")
        run = await api.finished(run_id, timeout=15)

    assert (run["state"], run["error_type"]) == ("lost", "LostAfterStart"), run
    assert [(s["job_id"], s["state"]) for s in run["steps"]] == [("hang", "lost")]
    assert run["finished_at"] is not None


async def test_sigterm_drains_the_worker(tmp_path: Path) -> None:
    async with (
        Gate() as gate,
        system(tmp_path, capacity=2, worker=gate.worker_settings) as (_, worker, api),
    ):
        assert worker is not None
        _, hook = await api.workflow({"work": gated_job(gate, "run-{n}")}, [])
        active = await api.hook(hook, {"n": 1})
        await gate.reached("run-1")

        worker.process.send_signal(signal.SIGTERM)
        await worker.output.wait_for(r"stopping: waiting up to \S+ for 1 active runs")
        late = await api.hook(hook, {"n": 2})  # a free slot, and work-available is pushed
        gate.release("run-1")
        assert await worker.exited() == 0

        run = await api.finished(active)
        waiting = await api.run(late)
        final = await api.dataclip(run["final_dataclip_id"])

    assert (run["state"], run["error_type"]) == ("success", None), run
    assert final["data"] == {"n": 1, "run-1": True}
    assert (waiting["state"], waiting["claimed_at"]) == ("available", None)
    assert gate.arrived == ["run-1"]
    said = worker.output.text()
    assert said.count(" claimed on ") == 1
    assert "stopped" in said.splitlines()[-1]
