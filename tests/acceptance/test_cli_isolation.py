"""``--isolation`` as an operator meets it (issue 12): ``fulmen worker`` and ``fulmen runner``
say which level their sandbox got, refuse with one line a level the host cannot give, and
``fulmen up`` shows the level in its banner. (``fulmen run``'s are in test_cli_run.py.)"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fulmen.keys import generate
from fulmen_testing.runner.harness import runner_process
from fulmen_testing.up import fulmen_up

pytestmark = pytest.mark.timeout(90)

FULMEN = [sys.executable, "-m", "fulmen"]
SUMMARY = re.compile(r"isolation (none|L[0-3]) \(host uid \d+; ")
#: The host's network lacks L3's network mechanism on any host.
IMPOSSIBLE = ("--isolation", "L3", "--network", "host")


def worker_env(url: str = "ws://127.0.0.1:9/worker") -> dict[str, str]:
    keys = generate()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    return {
        **clean,
        "WORKER_SECRET": keys.worker_secret,
        "WORKER_LIGHTNING_PUBLIC_KEY": keys.public_key,
        "WORKER_LIGHTNING_SERVICE_URL": url,
        "WORKER_PORT": "0",
        "WORKER_HEALTH_HOST": "127.0.0.1",
    }


def assert_refused(stderr: str, prefix: str) -> None:
    [line] = stderr.splitlines()
    assert line.startswith(f"{prefix}The sandbox gives isolation "), line
    missing = line.split("below the L3 asked for. Missing: ", 1)[1]
    assert "network: " in missing
    assert line.endswith("See the README's 'Security model'.")


def test_the_worker_refuses_a_level_the_host_cannot_give_with_one_line() -> None:
    done = subprocess.run(
        [*FULMEN, "worker", "--log", "warn", *IMPOSSIBLE],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert_refused(done.stderr, "fulmen worker: ")


def test_the_runner_refuses_a_level_the_host_cannot_give_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*FULMEN, "runner", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path), *IMPOSSIBLE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert_refused(done.stderr, "fulmen runner: ")


def test_the_worker_says_which_level_its_sandbox_got() -> None:
    with socket.socket() as nobody:  # a coordinator that never answers: the worker retries
        nobody.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{nobody.getsockname()[1]}/worker"
        process = subprocess.Popen(
            [*FULMEN, "worker", "--log", "info", "--isolation", "best"],
            env=worker_env(url),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "fulmen.worker.main: sandbox: " in line:
                    assert SUMMARY.match(line.split("sandbox: ", 1)[1]), line
                    break
            else:
                pytest.fail(f"the worker exited with {process.wait()} before its sandbox line")
        finally:
            process.terminate()
            process.wait(timeout=30)
            if process.stderr is not None:
                process.stderr.close()


def test_the_runner_says_which_level_its_sandbox_got(tmp_path: Path) -> None:
    with runner_process(tmp_path / "state", "--isolation", "best") as (process, _):
        assert process.stderr is not None
        line = process.stderr.readline()
    assert line.startswith("fulmen runner: sandbox: "), line
    assert SUMMARY.match(line.removeprefix("fulmen runner: sandbox: ")), line


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_up_shows_the_level_the_worker_got(tmp_path: Path, anyio_backend: str) -> None:
    async with fulmen_up(tmp_path, "--no-runner") as up:
        [banner] = [line for line in up.lines if line.startswith("Sandbox: ")]
        assert SUMMARY.match(banner.removeprefix("Sandbox: ")), banner
        assert up.lines[-2] == banner  # after where things are, before the Data line
