"""The official ``phoenix`` JavaScript client, from npm, as a worker of a Fulmen coordinator.

A second implementation of Phoenix Channels checks ours: tests/js/phoenix_worker.cjs claims a
run, joins its channel, fetches the plan, the dataclip (a binary reply) and the credential,
and reports a two-step run. The stored run, steps, dataclips and log lines must be exactly
what it sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fulmen.plan import Options
from fulmen.store import DataclipType, EnqueueRequest, NewDataclip
from fulmen_testing.coordinator import seed, serve, sqlite_store, worker_token

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
JS_CACHE = REPO / ".cache" / "js"
SCRIPT = REPO / "tests" / "js" / "phoenix_worker.cjs"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``phoenix`` and ``ws`` from npm, into a git-ignored cache (no lock file is written)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed for the Phoenix JS client test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    modules = JS_CACHE / "node_modules"
    if not all((modules / name / "package.json").exists() for name in ("phoenix", "ws")):
        JS_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(JS_CACHE),
                "phoenix",
                "ws",
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
    return modules


def micros(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))


async def run_js_worker(url: str, modules: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "NODE_PATH": str(modules)}
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        url,
        worker_token("js-worker"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    records = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert process.returncode == 0, (records, err.decode())
    assert records[-1] == {"event": "done"}
    return records


def sent(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == event]


async def test_the_phoenix_js_client_runs_a_whole_run(tmp_path: Path, node_modules: Path) -> None:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        enqueued = await store.enqueue(
            EnqueueRequest(
                seeded.workflow_id,
                input=NewDataclip(
                    DataclipType.HTTP_REQUEST, {"hello": "world"}, request={"method": "POST"}
                ),
                trigger_id=seeded.webhook_id,
                options=Options(run_timeout_ms=300_000),
            )
        )
        async with serve(store) as served:
            records = await run_js_worker(served.socket_url, node_modules)
        assert all(r.get("status") == "ok" for r in records if "status" in r), records

        # what the coordinator answered
        claim = sent(records, "claim")[0]["response"]
        assert [run["id"] for run in claim["runs"]] == [enqueued.run_id]
        plan = sent(records, "fetch:plan")[0]["response"]
        assert plan["id"] == enqueued.run_id
        assert plan["dataclip_id"] == enqueued.dataclip_id
        assert [job["id"] for job in plan["jobs"]] == list(seeded.job_ids)
        assert plan["options"]["run_timeout_ms"] == 300_000
        dataclip = json.loads(sent(records, "fetch:dataclip")[0]["response"]["bytes"])
        assert dataclip == {"data": {"hello": "world"}, "request": {"method": "POST"}}
        credential = sent(records, "fetch:credential")[0]
        assert credential["response"] == {"user": "alice", "password": "s3cr3t-pw"}

        # what was stored: exactly what the client sent
        detail = await store.get_run(enqueued.run_id)
        complete = sent(records, "run:complete")[0]["payload"]
        assert detail.run.state == "success"
        assert detail.run.worker_name == "js-phoenix"
        assert detail.run.final_dataclip_id == complete["final_dataclip_id"]
        assert micros(detail.run.finished_at) == complete["timestamp"]
        started = sent(records, "run:start")[0]["payload"]["timestamp"]
        assert micros(detail.run.started_at) == started
        starts = [r["payload"] for r in sent(records, "step:start")]
        completes = [r["payload"] for r in sent(records, "step:complete")]
        assert [s.id for s in detail.steps] == [p["step_id"] for p in starts]
        for step, start, done in zip(detail.steps, starts, completes, strict=True):
            assert step.job_id == start["job_id"]
            assert step.input_dataclip_id == start["input_dataclip_id"]
            assert micros(step.started_at) == start["timestamp"]
            assert step.state == "success"
            assert step.output_dataclip_id == done["output_dataclip_id"]
            assert micros(step.finished_at) == done["timestamp"]
            output = await store.get_dataclip(done["output_dataclip_id"])
            assert output.type == "step_result"
            assert output.body == json.loads(done["output_dataclip"])

        logs = (await store.get_logs(enqueued.run_id)).items
        lines = [r["payload"] for r in sent(records, "run:log")]
        lines += sent(records, "run:batch_logs")[0]["payload"]["logs"]
        assert [log.message for log in logs] == [
            " ".join(
                p if isinstance(p, str) else json.dumps(p, separators=(",", ":"))
                for p in line["message"]
            )
            for line in lines
        ]
        assert [(log.source, log.level, log.step_id, micros(log.timestamp)) for log in logs] == [
            (line["source"], line["level"], line.get("step_id"), line["timestamp"])
            for line in lines
        ]
        log_replies = [r["response"]["log_line_id"] for r in sent(records, "run:log")]
        assert log_replies == [log.id for log in logs[: len(log_replies)]]
