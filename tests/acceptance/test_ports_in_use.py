"""Every service started on a port another program listens on says so in one line, naming the
address and the flag that changes it, and exits 2, with no traceback (issue 21)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulmen import keys as keyring


@pytest.fixture(scope="module")
def taken() -> Iterator[int]:
    """A port on loopback that another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        yield int(other.getsockname()[1])


def environment(tmp_path: Path) -> dict[str, str]:
    keys = keyring.generate()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    env.update(
        WORKER_SECRET=keys.worker_secret,
        WORKER_RUNS_PRIVATE_KEY=keys.private_key,
        WORKER_LIGHTNING_PUBLIC_KEY=keys.public_key,
        FULMEN_DATA_DIR=str(tmp_path / "data"),
        WORKER_REPO_DIR=str(tmp_path / "repo"),
    )
    return env


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["server", "-p"], "-p/--port (FULMEN_PORT)"),
        (["worker", "-p"], "-p/--port (WORKER_PORT)"),
        (["runner", "--listen"], "--listen (FULMEN_RUNNER_LISTEN)"),
    ],
    ids=["server", "worker", "runner"],
)
def test_a_port_in_use_is_one_line_naming_it(
    tmp_path: Path, taken: int, command: list[str], flag: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fulmen", *command, _address(command[0], taken)],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"fulmen {command[0]}: cannot listen on 127.0.0.1:{taken}: ")
    assert "another program listens there" in last
    assert last.endswith(f"{flag} picks another port")


def _address(command: str, port: int) -> str:
    """The runner takes HOST:PORT; the others a port."""
    return f"127.0.0.1:{port}" if command == "runner" else str(port)
