"""A database URL that cannot be used is one line naming what Fulmen takes, or the server that
could not be reached, with no driver warnings and no traceback (issue 21)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fulmen import keys as keyring


def server(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    keys = keyring.generate()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    env.update(WORKER_SECRET=keys.worker_secret, WORKER_RUNS_PRIVATE_KEY=keys.private_key)
    return subprocess.run(
        [sys.executable, "-m", "fulmen", "server", "-p", "0", "--database-url", url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/fulmen", "fulmen.db"])
def test_a_database_fulmen_does_not_keep_is_named_in_words(tmp_path: Path, url: str) -> None:
    done = server(tmp_path, url)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "fulmen server: the database URL (FULMEN_DATABASE_URL, --database-url) must be "
        "sqlite:///<file> or postgresql://<user>@<host>/<database>, not "
    )
    assert "Traceback" not in done.stderr


def test_an_unreachable_postgresql_is_one_line_naming_the_server(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    done = server(tmp_path, f"postgresql://fulmen:secret-pw@127.0.0.1:{port}/fulmen")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"fulmen server: cannot reach the PostgreSQL database 127.0.0.1:{port}/fulmen: "
    )
    assert last.endswith(
        "is the server running, and is the database URL (FULMEN_DATABASE_URL) right?"
    )
    assert "psycopg.pool" not in done.stderr and "Traceback" not in done.stderr
    assert "secret-pw" not in done.stderr
