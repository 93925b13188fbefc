"""``--log-format json`` (FULMEN_LOG_FORMAT=json) on real processes: a log pipeline can follow
one run across the coordinator's and the worker's lines by its run id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import system

pytestmark = pytest.mark.anyio

JSON = {"FULMEN_LOG_FORMAT": "json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def records(text: str) -> list[dict[str, Any]]:
    """Every log line as its object; the one-line banners (``fulmen …: listening``) aside."""
    found = []
    for line in text.splitlines():
        if line.startswith("fulmen "):
            continue
        found.append(json.loads(line))  # anything else that is not JSON fails the test
    return found


async def test_a_run_is_followed_by_its_id_in_both_services_json_lines(tmp_path: Path) -> None:
    async with system(tmp_path, coordinator=JSON, worker=JSON) as (coordinator, worker, api):
        assert worker is not None and coordinator.output is not None
        _, hook = await api.workflow({"only": "fn(lambda state: state)"}, [])
        run_id = await api.hook(hook, {"n": 1})
        assert (await api.finished(run_id))["state"] == "success"
        await coordinator.output.wait_for(f"run {run_id} completed")
        await worker.output.wait_for(f"run {run_id} ended")
        server_lines = records(coordinator.output.text())
        worker_lines = records(worker.output.text())

    completed = next(r for r in server_lines if r["message"] == f"run {run_id} completed: success")
    assert completed["run_id"] == run_id and completed["level"] == "info"
    assert completed["worker"]  # the worker whose socket reported it
    ended = next(r for r in worker_lines if r["message"].startswith(f"run {run_id} ended"))
    assert (ended["run_id"], ended["worker"]) == (run_id, completed["worker"])
    assert all(r.get("run_id") in (None, run_id) for r in server_lines + worker_lines)
