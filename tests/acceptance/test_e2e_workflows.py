"""End to end, real processes on loopback: a webhook posted to ``fulmen server`` runs a
multi-job workflow on ``fulmen worker``, down its success and failure edges, and what the
REST API then shows (run, steps with their reasons and output dataclips, logs) is what the
jobs did. The run timeout and the memory limit end runs as the spec names (kill/TimeoutError,
kill/OOMError), and that is what is stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import Api, system

pytestmark = pytest.mark.anyio

INTAKE = """\
@fn
def intake(state):
    items = state['data'].get('items') or []
    print(f'intake: {len(items)} items')
    if not items:
        raise ValueError('nothing to take in')
    state['data'] = {'items': items, 'total': sum(items)}
    return state
"""
VALIDATE = """\
@fn
def validate(state):
    total = state['data']['total']
    if total > 10:
        raise ValueError(f'total {total} is over 10')
    print(f'valid: {total}')
    return state
"""
PUBLISH = """\
@fn
def publish(state):
    print('published', state['data']['total'])
    state['data'] = {'published': state['data']['total']}
    return state
"""
ALERT = """\
@fn
def alert(state):
    print('alert:', state['errors']['validate']['message'])
    state['data'] = {'alerted': state['data']['total']}
    return state
"""
JOBS = {"intake": INTAKE, "validate": VALIDATE, "publish": PUBLISH, "alert": ALERT}
EDGES = [
    ("intake", "validate", "on_job_success"),
    ("validate", "publish", "on_job_success"),
    ("validate", "alert", "on_job_failure"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def by_job(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    steps = {step["job_id"]: step for step in run["steps"]}
    assert len(steps) == len(run["steps"]), f"a job ran twice: {run['steps']}"
    return steps


async def messages(api: Api, run: dict[str, Any]) -> dict[str, list[str]]:
    """The run's log messages by the job whose step logged them (``"run"``: the run's own)."""
    jobs = {step["id"]: step["job_id"] for step in run["steps"]}
    lines: dict[str, list[str]] = {}
    for line in await api.logs(run["id"]):
        lines.setdefault(jobs.get(line["step_id"], "run"), []).append(line["message"])
    return lines


async def test_a_webhook_runs_a_workflow_down_its_success_and_failure_edges(
    tmp_path: Path,
) -> None:
    async with system(tmp_path, capacity=3) as (_, _, api):
        workflow_id, hook = await api.workflow(JOBS, EDGES)
        ok_id, handled_id, failed_id = await asyncio.gather(
            api.hook(hook, {"items": [1, 2, 3]}),
            api.hook(hook, {"items": [5, 6]}),
            api.hook(hook, {"items": []}),
        )
        ok, handled, failed = await asyncio.gather(
            api.finished(ok_id), api.finished(handled_id), api.finished(failed_id)
        )

        # Success all the way: intake -> validate -> publish; alert never runs.
        assert (ok["state"], ok["error_type"]) == ("success", None), ok
        steps = by_job(ok)
        assert [s["job_id"] for s in ok["steps"]] == ["intake", "validate", "publish"]
        assert {s["state"] for s in ok["steps"]} == {"success"}
        intake_out = await api.dataclip(steps["intake"]["output_dataclip_id"])
        assert intake_out["data"] == {"items": [1, 2, 3], "total": 6}
        assert intake_out["request"]["method"] == "POST"  # the webhook's request, carried on
        assert (await api.dataclip(steps["publish"]["output_dataclip_id"]))["data"] == {
            "published": 6
        }
        assert ok["final_dataclip_id"] == steps["publish"]["output_dataclip_id"]
        # each step's input is the output of the step before it
        assert steps["validate"]["input_dataclip_id"] == steps["intake"]["output_dataclip_id"]
        assert steps["intake"]["input_dataclip_id"] == ok["dataclip_id"]
        logged = await messages(api, ok)
        assert "intake: 3 items" in logged["intake"]
        assert "valid: 6" in logged["validate"]
        assert "published 6" in logged["publish"]

        # validate fails, the on_job_failure edge runs alert; a handled failure is a success
        # for the run (only leaves count, §7.1), but the failed step keeps its reason.
        steps = by_job(handled)
        assert [s["job_id"] for s in handled["steps"]] == ["intake", "validate", "alert"]
        assert (steps["validate"]["state"], steps["validate"]["error_type"]) == (
            "fail",
            "ValueError",
        )
        assert "total 11 is over 10" in steps["validate"]["error_message"]
        assert steps["alert"]["state"] == "success"
        assert handled["state"] == "success", handled
        assert (await api.dataclip(steps["alert"]["output_dataclip_id"]))["data"] == {"alerted": 11}
        assert any(
            "alert: " in m and "total 11 is over 10" in m
            for m in (await messages(api, handled)).get("alert", [])
        )

        # intake fails with no failure edge: the run fails with the step's reason.
        assert [s["job_id"] for s in failed["steps"]] == ["intake"]
        step = failed["steps"][0]
        assert (step["state"], step["error_type"]) == ("fail", "ValueError")
        assert (failed["state"], failed["error_type"]) == ("failed", "ValueError"), failed
        assert "nothing to take in" in failed["error_message"]
        assert "intake: 0 items" in (await messages(api, failed)).get("intake", [])

        # every run is where the API lists it, each once, all finished
        listed = {run["id"]: run["state"] for run in await api.runs(workflow_id)}
        assert listed == {ok_id: "success", handled_id: "success", failed_id: "failed"}

        # the largest log page the API advertises is one it serves (it said 5000; the store
        # refused more than 1000)
        document = (await api.http.get("/openapi.json")).json()
        parameters = document["paths"]["/api/runs/{run_id}/logs"]["get"]["parameters"]
        bound = next(p for p in parameters if p["name"] == "limit")["schema"]["maximum"]
        page = await api.http.get(
            f"/api/runs/{ok_id}/logs", params={"limit": bound}, headers=api.headers
        )
        assert page.status_code == 200, page.text


async def test_timeout_and_out_of_memory_end_runs_with_kill(tmp_path: Path) -> None:
    async with system(
        tmp_path,
        capacity=2,
        coordinator={"WORKER_MAX_RUN_DURATION_SECONDS": "1.5"},  # the plan's run timeout
        worker={"WORKER_MAX_RUN_MEMORY_MB": "128"},  # the default when the plan sets none
    ) as (_, _, api):
        _, slow_hook = await api.workflow(
            {
                "first": "fn(lambda s: s)\n",
                "slow": "import time\n@fn\ndef slow(s):\n    print('sleeping')\n"
                "    time.sleep(60)\n",
            },
            [("first", "slow", "on_job_success")],
            name="slow",
        )
        _, greedy_hook = await api.workflow(
            {"greedy": "fn(lambda s: {**s, 'big': bytearray(400 * 1024 * 1024)})\n"},
            [],
            name="greedy",
        )
        slow_id, greedy_id = await asyncio.gather(
            api.hook(slow_hook, {}), api.hook(greedy_hook, {})
        )
        slow, greedy = await asyncio.gather(api.finished(slow_id), api.finished(greedy_id))
        slow_logs = [line["message"] for line in await api.logs(slow_id)]
        greedy_logs = [line["message"] for line in await api.logs(greedy_id)]

    assert (slow["state"], slow["error_type"]) == ("killed", "TimeoutError"), slow
    assert slow["error_message"] == "Workflow failed to return within 1500ms"
    assert [(s["job_id"], s["state"], s["error_type"]) for s in slow["steps"]] == [
        ("first", "success", None),
        ("slow", "kill", "TimeoutError"),
    ]
    assert all(s["finished_at"] is not None for s in slow["steps"])

    assert (greedy["state"], greedy["error_type"]) == ("killed", "OOMError"), greedy
    assert greedy["error_message"] == "Run exceeded maximum memory usage"
    assert [(s["job_id"], s["state"], s["error_type"]) for s in greedy["steps"]] == [
        ("greedy", "kill", "OOMError")
    ]
    # the limits were announced before the run began, and its end says why
    for logs in (slow_logs, greedy_logs):
        assert logs[:2] == ["Memory limit: 128mb", "Timeout: 1.5s"]
    assert "sleeping" in slow_logs
    assert slow_logs[-1] == "TimeoutError: Workflow failed to return within 1500ms"
    assert greedy_logs[-1] == "OOMError: Run exceeded maximum memory usage"
