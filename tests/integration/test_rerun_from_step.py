"""Reruns (issue 8) with a real Fulmen worker, on SQLite and PostgreSQL: a two-step run, then
the workflow changed, then its work order rerun from the second step, through the REST API
and through ``fulmen runs rerun`` (by the job's name): each rerun is a new run in the same
work order, starting at the second job with that step's stored input (the first step's
output), running the current version of the workflow. ``fulmen runs list``, ``show`` and
``logs`` name workflows and jobs as the user does (issue 21)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fulmen.cli import cli
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.plan import Job
from fulmen.store import RunDetail, SQLStore
from fulmen_testing.coordinator import seed
from fulmen_testing.operator import BACKENDS, Site, fulmen_worker, site, store_at, until

pytestmark = pytest.mark.anyio

ADD_ONE = "fn(lambda s: {**s, 'data': {'n': s['data']['n'] + 1}})"
TIMES_TEN = "fn(lambda s: {**s, 'data': {'n': s['data']['n'] * 10}})"
TIMES_HUNDRED = "fn(lambda s: {**s, 'data': {'n': s['data']['n'] * 100}})"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLStore]:
    async with store_at(request.param, tmp_path) as (opened, _):
        yield opened


async def ended(store: SQLStore, run_id: str) -> RunDetail:
    return await until(
        lambda: store.get_run(run_id),
        lambda detail: detail.run.state in FINAL_RUN_STATES,
        what=f"run {run_id} ended",
    )


async def final(store: SQLStore, detail: RunDetail) -> Any:
    assert detail.run.final_dataclip_id is not None
    body = (await store.get_dataclip(detail.run.final_dataclip_id)).body
    assert isinstance(body, dict)
    return body["data"]


async def test_a_rerun_from_the_second_step(store: SQLStore, tmp_path: Path) -> None:
    seeded = await seed(store, jobs=(("add", ADD_ONE), ("times", TIMES_TEN)))
    async with site(store) as s, fulmen_worker(s.served):
        made = (await s.http.post(f"/i/{seeded.webhook_id}", json={"n": 1})).json()
        first = await ended(store, made["run_id"])
        assert first.run.state == "success" and await final(store, first) == {"n": 20}
        second_step = first.steps[1]
        assert second_step.job_id == seeded.job_ids[1]

        # A new version: the second job now multiplies by 100.
        stored = await store.get_workflow(seeded.workflow_id)
        add, times = stored.workflow.jobs
        changed = dataclasses.replace(
            stored.workflow, jobs=(add, Job(times.id, TIMES_HUNDRED, times.adaptor, times.name))
        )
        await store.replace_workflow(changed, expected_version=stored.version)

        again = await s.api("POST", f"/api/steps/{second_step.id}/rerun", 201)
        assert again["work_order_id"] == made["work_order_id"]
        rerun = await ended(store, again["run_id"])
        assert (rerun.run.state, rerun.run.rerun_of) == ("success", made["run_id"])
        assert rerun.run.starting_node_id == seeded.job_ids[1]
        assert rerun.run.dataclip_id == second_step.input_dataclip_id
        assert [step.job_id for step in rerun.steps] == [seeded.job_ids[1]]  # only job 2
        assert rerun.steps[0].input_dataclip_id == second_step.input_dataclip_id
        assert await final(store, rerun) == {"n": 200}  # job 1's output (2), version 2
        assert (rerun.run.snapshot_version, first.run.snapshot_version) == (2, 1)

        # The same from the command line, by work order and the job's name.
        output = await fulmen(s, "runs", "rerun", made["work_order_id"], "--from-job", "times")
        cli_run, cli_order = output.strip().split("\t")
        assert cli_order == made["work_order_id"]
        assert await final(store, await ended(store, cli_run)) == {"n": 200}
        listed = await fulmen(s, "runs", "list", "--work-order", made["work_order_id"])
        header, *lines = listed.splitlines()
        assert header.split("\t") == [
            "RUN", "STATE", "ATTEMPT", "WORKFLOW", "VERSION", "WORK ORDER", "CREATED"
        ]  # fmt: skip
        assert [line.split("\t")[:5] for line in lines] == [
            [cli_run, "success", "attempt 1", "chain", "v2"],
            [again["run_id"], "success", "attempt 1", "chain", "v2"],
            [made["run_id"], "success", "attempt 1", "chain", "v1"],
        ]
        # by the workflow's and the project's names, as a user reads them
        by_name = await fulmen(
            s, "runs", "list", "--project", "tests", "--workflow", "chain", "--no-header"
        )
        assert [line.split("\t")[0] for line in by_name.splitlines()] == [
            cli_run, again["run_id"], made["run_id"]
        ]  # fmt: skip
        unknown = await fulmen(s, "runs", "list", "--workflow", "nope", code=2)
        assert unknown.strip() == (
            "fulmen runs list: no workflow is named 'nope' (workflows: chain)"
        )
        # steps named by their jobs; the log, job by job
        shown = await fulmen(s, "runs", "show", made["run_id"])
        assert [line.split("\t")[1:] for line in shown.splitlines()[1:]] == [
            ["add", "success"],
            ["times", "success"],
        ]
        logged = await fulmen(s, "runs", "logs", made["run_id"], "--follow")
        where = {line.split("\t")[2] for line in logged.splitlines() if "\t" in line}
        assert where >= {"add", "times"}
        assert logged.rstrip().endswith("Run complete with status: success")
        assert "Traceback" not in logged
        refused = await fulmen(s, "runs", "rerun", "no-such-work-order", code=1)
        assert "no-such-work-order: work order no-such-work-order does not exist" in refused
    assert (await store.get_work_order(made["work_order_id"])).state == "success"


async def fulmen(s: Site, *args: str, code: int = 0) -> str:
    """``fulmen <args>`` against the served coordinator (in a thread: the CLI blocks)."""
    env = {"FULMEN_URL": s.served.base_url, "FULMEN_API_TOKEN": s.token}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output
