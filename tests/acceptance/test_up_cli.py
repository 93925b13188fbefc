"""``fulmen up`` as a newcomer meets it: started in an empty directory it makes its data
directory (secrets 0600), loads the example project, prints where things are, runs what its
webhook is sent, stops on Ctrl-C with nothing left behind, and a second start carries on
with the same data."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
from pathlib import Path

import httpx2
import pytest

from fulmen_testing.up import FULMEN, environment, fulmen_up

pytestmark = pytest.mark.anyio

SECRETS = (
    "keys/WORKER_SECRET",
    "keys/WORKER_RUNS_PRIVATE_KEY",
    "keys/WORKER_LIGHTNING_PUBLIC_KEY",
    "credential.key",
    "api-token",
    "runner-api-token",
    "runner/master.key",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_up_in_an_empty_directory_runs_the_example_webhook_and_starts_again(
    tmp_path: Path,
) -> None:
    async with fulmen_up(tmp_path) as up:
        assert up.dashboard.startswith("http://127.0.0.1:") and up.dashboard.endswith("/ui")
        assert len(up.webhooks) == 1, up.lines
        assert up.lines[1].endswith("(examples/count-and-report)")
        assert up.admin[0] == "admin@localhost" and len(up.admin[1]) >= 20
        data = tmp_path / ".fulmen"
        for name in SECRETS:
            assert (data / name).stat().st_mode & 0o777 == 0o600, name
        assert (data / "fulmen.db").stat().st_mode & 0o077 == 0
        assert data.stat().st_mode & 0o777 == 0o700

        async with up.api() as api:
            posted = await api.post(up.webhooks[0], json={"items": ["a", "b", "c"]})
            assert posted.status_code == 200, posted.text
            run_id = posted.json()["run_id"]
            async with asyncio.timeout(30):
                while (run := (await api.get(f"/api/runs/{run_id}")).json())["state"] in (
                    "available",
                    "claimed",
                    "started",
                ):
                    await asyncio.sleep(0.1)  # polling the API as a user would
            assert run["state"] == "success", (run, up.stderr[-30:])
            assert len(run["steps"]) == 3  # count, check, report
            final = (await api.get(f"/api/dataclips/{run['final_dataclip_id']}")).json()
            assert final["body"]["data"] == {"report": "processed 3 items"}
        await _paste_the_runner_example(up.lines, tmp_path)
        await _the_dashboard_lists_the_smart_worker(up.base, *up.admin)
        children = up.children()
        assert len(children) == 3  # server, worker, runner
        assert await up.interrupt() == 0
    assert not any(alive(pid) for pid in children)
    assert "fulmen up: stopped" in up.stderr

    async with fulmen_up(tmp_path) as again:
        # same data directory, same webhook (on another port: both were --port 0)
        assert [url.split("/i/")[1] for url in again.webhooks] == [
            url.split("/i/")[1] for url in up.webhooks
        ]
        assert not any("loaded" in line for line in again.stderr)
        # The first admin's password was printed once, on the first start.
        assert not any(line.startswith(("Admin:", "Password:")) for line in again.lines)
        async with again.api() as api:
            projects = (await api.get("/api/projects")).json()["items"]
            assert [p["name"] for p in projects] == ["examples"]
            runs = (await api.get("/api/runs")).json()["items"]
            assert [r["id"] for r in runs] == [run_id]


async def _the_dashboard_lists_the_smart_worker(base: str, email: str, password: str) -> None:
    """``fulmen up`` told the coordinator its runner: the dashboard, signed in to as the
    first admin it printed, lists the pasted worker with its schedule."""
    async with httpx2.AsyncClient(base_url=base, timeout=30) as browser:
        form = {"email": email, "password": password}
        signed = await browser.post("/ui/login", data=form, headers={"Origin": base})
        assert signed.status_code == 303, signed.text
        page = await browser.get("/ui/smart-workers")
        assert page.status_code == 200, page.text
        assert "*/5 * * * * (UTC)" in page.text and "No runner configured" not in page.text


async def _paste_the_runner_example(lines: list[str], cwd: Path) -> None:
    """The banner's ``curl`` line, pasted into a shell beside a ``worker.py``, creates a
    smart worker: the runner's token header is in it, and without it the runner refuses."""
    runner = next(i for i, line in enumerate(lines) if line.startswith("Runner: "))
    command = lines[runner + 1].strip()
    assert command.startswith("curl ") and '-H "Authorization: Bearer $(cat ' in command
    (cwd / "worker.py").write_text("async def tasks(rnr):\n    print('hello')\n")
    for pasted, expected in ((command, 201), (re.sub(r' -H "[^"]*"', "", command), 401)):
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", pasted + " -o /dev/null -w '%{http_code}'", cwd=cwd,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await shell.communicate()
        assert shell.returncode == 0 and out.decode() == str(expected), (pasted, out)


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*FULMEN, "up", "--port", str(port), "--no-runner"],
            cwd=tmp_path,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == (
        f"fulmen up: cannot listen on 127.0.0.1:{port}: another program listens there; "
        "--port picks another port\n"
    )


def test_an_admin_address_that_is_none_is_one_line_before_anything_starts(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [*FULMEN, "up", "--no-runner"],
        cwd=tmp_path,
        env=environment() | {"FULMEN_ADMIN_EMAIL": "not an address"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "fulmen up: FULMEN_ADMIN_EMAIL: 'not an address' is not an e-mail address\n"
    )
    assert not (tmp_path / ".fulmen").exists()
