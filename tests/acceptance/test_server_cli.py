"""``fulmen server`` as a subprocess: it starts on an empty data directory, answers health,
makes API tokens, and turns a webhook into a run; with ``fulmen worker`` (also a subprocess)
a webhook-triggered multi-job workflow runs to the end and is stored as it ran."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen import keys as keyring
from fulmen_testing.e2e import Gate, gated_job, system

pytestmark = pytest.mark.anyio

FULMEN = [sys.executable, "-m", "fulmen"]
COUNT = (
    "@fn\ndef count(state):\n    items = state['data'].get('items', [])\n"
    "    print(f'{len(items)} items')\n"
    "    state['data'] = {'count': len(items)}\n    return state\n"
)
#: A stopping server drains its sockets (socket.DRAIN_TIMEOUT, 10 s at most) and then its
#: HTTP requests (cli/server.SHUTDOWN_TIMEOUT, 10 s at most): it is gone well within this.
STOP_TIMEOUT = 25
REPORT = "fn(lambda state: {**state, 'data': {'report': state['data']['count'] * 10}})\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def generated() -> keyring.GeneratedKeys:
    return keyring.generate()


def environment(keys: keyring.GeneratedKeys, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    env.update(
        WORKER_SECRET=keys.worker_secret,
        WORKER_RUNS_PRIVATE_KEY=keys.private_key,
        FULMEN_DATA_DIR=str(data_dir),
    )
    return env


@asynccontextmanager
async def fulmen_server(
    env: dict[str, str], cwd: Path | None = None, seen: list[str] | None = None
) -> AsyncIterator[str]:
    """A ``fulmen server`` on a free port, its URL; ``seen`` gets its lines up to listening."""
    process = await asyncio.create_subprocess_exec(
        *FULMEN, "server", "--port", "0", env=env, cwd=cwd, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    seen = [] if seen is None else seen
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "fulmen server exited early:\n" + "".join(seen)
                seen.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    break
        drain = asyncio.get_running_loop().create_task(process.stderr.read())
        yield match.group(1)
    finally:
        if process.returncode is None:
            process.terminate()
            async with asyncio.timeout(20):
                await process.wait()
    await drain


def token(env: dict[str, str], cwd: Path | None = None) -> str:
    done = subprocess.run(
        [*FULMEN, "server", "token", "create", "--name", "tests"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


async def workflow(http: httpx2.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    project = (
        await http.post("/api/projects", json={"name": "acceptance"}, headers=headers)
    ).json()
    document = {
        "name": "count and report",
        "jobs": [
            {"id": "count", "name": "count", "adaptor": "common", "body": COUNT},
            {"id": "report", "name": "report", "adaptor": "common", "body": REPORT},
        ],
        "triggers": [{"id": f"hook-{project['id'][:8]}", "type": "webhook"}],
        "edges": [
            {"source_trigger_id": f"hook-{project['id'][:8]}", "target_job_id": "count"},
            {"source_job_id": "count", "target_job_id": "report", "condition": "on_job_success"},
        ],
    }
    created = await http.post(
        f"/api/projects/{project['id']}/workflows", json=document, headers=headers
    )
    assert created.status_code == 201, created.text
    return created.json()


async def test_server_starts_on_an_empty_data_dir_and_takes_a_webhook(
    tmp_path: Path, generated: keyring.GeneratedKeys
) -> None:
    env = environment(generated, tmp_path / "data")
    async with fulmen_server(env) as base, httpx2.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/health/ready")).status_code == 200
        headers = {"Authorization": f"Bearer {token(env)}"}
        flow = await workflow(http, headers)
        hooked = await http.post(f"/i/{flow['triggers'][0]['id']}", json={"items": [1, 2]})
        assert hooked.status_code == 200
        ids = hooked.json()
        run = (await http.get(f"/api/runs/{ids['run_id']}", headers=headers)).json()
        assert run["work_order_id"] == ids["work_order_id"]
        assert run["state"] == "available"
    assert (tmp_path / "data" / "fulmen.db").exists()
    assert (tmp_path / "data" / "credential.key").stat().st_mode & 0o777 == 0o600


def test_server_without_its_secret_stops_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    done = subprocess.run(
        [*FULMEN, "server", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "fulmen server: WORKER_SECRET is not set"


async def test_a_fulmen_worker_runs_a_webhook_workflow_end_to_end(
    tmp_path: Path, generated: keyring.GeneratedKeys
) -> None:
    env = environment(generated, tmp_path / "data")
    async with fulmen_server(env) as base, httpx2.AsyncClient(base_url=base, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token(env)}"}
        flow = await workflow(http, headers)
        worker_env = {
            **env,
            "WORKER_LIGHTNING_SERVICE_URL": base.replace("http://", "ws://") + "/worker",
            "WORKER_LIGHTNING_PUBLIC_KEY": generated.public_key,
            "WORKER_PORT": "0",
            "WORKER_HEALTH_HOST": "127.0.0.1",
            "WORKER_CAPACITY": "1",
            "WORKER_LOG_LEVEL": "info",
        }
        worker = await asyncio.create_subprocess_exec(
            *FULMEN,
            "worker",
            env=worker_env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            hooked = await http.post(f"/i/{flow['triggers'][0]['id']}", json={"items": [1, 2, 3]})
            run_id = hooked.json()["run_id"]
            async with asyncio.timeout(60):
                while (run := (await http.get(f"/api/runs/{run_id}", headers=headers)).json())[
                    "state"
                ] in ("available", "claimed", "started"):
                    await asyncio.sleep(0.2)  # polling the API as a user would
        finally:
            worker.terminate()
            async with asyncio.timeout(30):
                _, err = await worker.communicate()
        assert run["state"] == "success", (run, err.decode()[-3000:])
        assert [step["job_id"] for step in run["steps"]] == ["count", "report"]
        assert all(step["state"] == "success" for step in run["steps"])
        outputs = [
            (await http.get(f"/api/dataclips/{step['output_dataclip_id']}", headers=headers)).json()
            for step in run["steps"]
        ]
        assert outputs[0]["body"]["data"] == {"count": 3}
        assert outputs[1]["body"]["data"] == {"report": 30}
        assert run["final_dataclip_id"] == run["steps"][1]["output_dataclip_id"]
        logs = (await http.get(f"/api/runs/{run_id}/logs", headers=headers)).json()["items"]
        assert any(
            line["message"] == "3 items" and line["step_id"] == run["steps"][0]["id"]
            for line in logs
        ), logs


# -- stopping ---------------------------------------------------------------------------------


async def test_sigterm_drains_the_workers_exits_0_and_a_restart_finishes_their_runs(
    tmp_path: Path,
) -> None:
    """SIGTERM with a run under way: the server sends its worker away (close code 1012) and
    exits 0 within a bounded wait; the worker reconnects to the server started again on the
    same port, delivers what the run did meanwhile, and takes new runs."""
    async with (
        Gate() as gate,
        system(tmp_path, worker=gate.worker_settings) as (server, worker, api),
    ):
        assert worker is not None and server.process is not None
        _, hook = await api.workflow({"step": gated_job(gate, "run-{n}")}, [])
        first = await api.hook(hook, {"n": 1})
        await gate.reached("run-1")
        server.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_TIMEOUT):
            assert await server.process.wait() == 0, server.output and server.output.text()
        await worker.output.wait_for(r"lost the connection")
        await server.start()
        gate.release("run-1")
        assert (await api.finished(first))["state"] == "success"
        second = await api.hook(hook, {"n": 2})
        await gate.reached("run-2")
        gate.release("run-2")
        assert (await api.finished(second))["state"] == "success"
        assert [line["message"] for line in await api.logs(first)].count("run-1 through") == 1


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_with_a_connected_worker_exits_0(
    tmp_path: Path, number: signal.Signals
) -> None:
    async with system(tmp_path) as (server, worker, _api):
        assert worker is not None and server.process is not None and server.output is not None
        server.process.send_signal(number)
        async with asyncio.timeout(STOP_TIMEOUT):
            assert await server.process.wait() == 0, server.output.text()
        await worker.output.wait_for(r"lost the connection")
        assert "draining 1 worker socket" in server.output.text()


async def test_every_command_finds_one_data_directory_and_a_second_coordinator_is_said(
    tmp_path: Path, generated: keyring.GeneratedKeys
) -> None:
    """Issue 21: ``fulmen server token create`` beside a running coordinator made a second
    store (``./fulmen-data``) and a token the server refused. Now ``.fulmen`` (or
    ``FULMEN_DATA_DIR``) is every command's, a second coordinator on that SQLite store says
    in one warning who serves it too, and a token command where there is no store says so."""
    env = environment(generated, tmp_path)
    del env["FULMEN_DATA_DIR"]
    here = tmp_path / "project"
    here.mkdir()
    async with fulmen_server(env, cwd=here) as base, httpx2.AsyncClient(base_url=base) as http:
        made = token(env, cwd=here)
        listed = await http.get("/api/projects", headers={"Authorization": f"Bearer {made}"})
        assert listed.status_code == 200  # the token is the running server's
        seen: list[str] = []
        async with fulmen_server(env, cwd=here, seen=seen):  # a second one on that store
            [warning] = [line for line in seen if "another coordinator" in line]
            store = here / ".fulmen" / "fulmen.db"
            assert f"serves the SQLite store {store} too" in warning
            assert "(pid " in warning and "Traceback" not in "".join(seen)
    assert sorted(p.name for p in here.iterdir()) == [".fulmen"]
    elsewhere = subprocess.run(
        [*FULMEN, "server", "token", "list"], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert elsewhere.returncode == 2
    assert elsewhere.stderr == (
        f"fulmen server token list: no store at {tmp_path / '.fulmen' / 'fulmen.db'}: run "
        "this where `fulmen up` or `fulmen server` keeps its data, or name that directory "
        "(--data-dir, FULMEN_DATA_DIR)\n"
    )
