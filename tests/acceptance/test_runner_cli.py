"""``fulmen runner`` as a subprocess: workers, their schedules, configs and keys survive a
clean stop and a ``kill -9``; start-up refuses what it cannot use, with one line."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.runner.harness import bearer, runner_process
from fulmen_testing.runner.scripts import KEYS

pytestmark = pytest.mark.timeout(60)

SCRIPT = (
    KEYS
    + """
async def on_event(event, rnr):
    pass

async def init(rnr):
    print("init ran")
"""
)


def snapshot(url: str, worker_id: str, state: Path) -> dict[str, Any]:
    with httpx2.Client(base_url=url, timeout=30, headers=bearer(state)) as http:
        detail = http.get(f"/workers/{worker_id}").json()
        bits = http.post(f"/workers/{worker_id}/fetch", json={}).json()["bits"]
        config = http.post(f"/workers/{worker_id}/fetch", json={"derive": False}).status_code
        return {"detail": detail, "bits": bits, "fetch": config}


def test_workers_survive_a_stop_and_a_kill(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with runner_process(state) as (process, url):
        with httpx2.Client(base_url=url, timeout=30, headers=bearer(state)) as http:
            fields = {
                "script": SCRIPT,
                "name": "keeper",
                # Once a year: a schedule due while the runner restarts moves next_run on,
                # as it should (*/5 did, when a run of this test straddled 19:40).
                "schedule": "0 0 1 1 *",
                "timezone": "Asia/Tokyo",
                "events": ["orders.*"],
                "config": {"k": 1},
            }
            made = http.post("/workers", json=fields)
            assert made.status_code == 201, made.text
        worker_id = made.json()["id"]
        before = snapshot(url, worker_id, state)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state / "master.key").st_mode) == 0o600
    for stop in (signal.SIGTERM, signal.SIGKILL):
        with runner_process(state) as (process, url):
            after = snapshot(url, worker_id, state)
            assert after["bits"] == before["bits"]  # the same key across restarts
            for field in ("id", "name", "schedule", "timezone", "events", "identity_id",
                          "next_run"):  # fmt: skip
                assert after["detail"][field] == before["detail"][field], field
            assert after["detail"]["state"] == "ready"
            with httpx2.Client(base_url=url, timeout=30, headers=bearer(state)) as http:
                logs = http.get(f"/workers/{worker_id}/logs").json()
                assert sum(r["line"] == "init ran" for r in logs) >= 2  # once per process start
                created_runs = [r for r in http.get(f"/workers/{worker_id}/runs").json()
                                if r["trigger"] == "create"]  # fmt: skip
                assert len(created_runs) == 1  # tasks at creation is not re-run on restart
            process.send_signal(stop)
            process.wait(timeout=20)


def test_start_up_refuses_a_shared_state_dir_and_a_readable_master_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = tmp_path / "loose.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with runner_process(state):
        # Started together: each pays the CLI's import time once, side by side.
        second, loose, bad_listen, public_no_auth = _start_all(
            [state],
            [tmp_path / "other", "--master-key-file", str(key)],
            [tmp_path / "third", "--listen", "127.0.0.1:http"],
            [tmp_path / "fourth", "--no-auth", "--listen", "0.0.0.0:0"],
        )
    assert public_no_auth.returncode == 2
    assert public_no_auth.stderr == (
        "fulmen runner: --no-auth is only for a loopback listener, not 0.0.0.0; "
        "clients send the API token instead\n"
    )
    assert second.returncode == 2
    assert "in use by another runner" in second.stderr
    assert loose.returncode == 2
    assert "make it 0600" in loose.stderr and len(loose.stderr.strip().splitlines()) == 1
    assert bad_listen.returncode == 2 and "numeric port" in bad_listen.stderr


def test_the_api_token_is_made_on_first_start_and_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    token_file = state / "api-token"
    with runner_process(state) as (process, url):
        assert process.stderr is not None
        assert process.stderr.readline().startswith("fulmen runner: sandbox: ")
        assert process.stderr.readline() == (
            f"fulmen runner: API token in {token_file} "
            "(send it as 'Authorization: Bearer <token>')\n"
        )
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        with httpx2.Client(base_url=url, timeout=30) as http:
            refused = http.get("/workers")
            assert refused.status_code == 401 and str(token_file) in refused.json()["error"]
            assert http.get("/workers", headers=bearer(state)).json() == []
    with runner_process(state, "--no-auth") as (process, url):
        assert process.stderr is not None
        process.stderr.readline()
        assert process.stderr.readline().startswith("fulmen runner: --no-auth: ")
        with httpx2.Client(base_url=url, timeout=30) as http:
            assert http.get("/workers").json() == []


def _start_all(*runs: list[Path | str]) -> list[subprocess.CompletedProcess[str]]:
    processes = []
    for state, *extra in runs:
        command = [sys.executable, "-m", "fulmen", "runner", "--listen", "127.0.0.1:0",
                   "--state-dir", str(state), *map(str, extra)]  # fmt: skip
        processes.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    results = []
    for process in processes:
        out, err = process.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results
