"""What the coordinator leaves on disk (issue 13): its data directory and database files are
its owner's only, whatever the umask. Checked on ``fulmen server`` itself, started as an
operator would under the common umask 022."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from coordinator_support import keys

pytestmark = pytest.mark.anyio

TS = "1760000000000000"
#: What a caller sent and retention must erase: a short value, and one long enough to need
#: SQLite overflow pages (over a 4 KiB page).
MARKER = "patient-7c1e-hiv-positive"
LONG = "x-ray-report-5d2b " * 400


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- file modes -------------------------------------------------------------------------------


@dataclass
class Started:
    url: str
    log: list[str]


@asynccontextmanager
async def fulmen_server(data_dir: Path) -> AsyncIterator[Started]:
    """``fulmen server --data-dir DATA_DIR`` under umask 022, until it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    env.update(WORKER_SECRET=keys().worker_secret, WORKER_RUNS_PRIVATE_KEY=keys().private_key)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "fulmen", "server", "--port", "0", "--data-dir", str(data_dir)),
        env=env,
        stderr=asyncio.subprocess.PIPE,
        umask=0o022,
    )
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not (match := re.search(r"listening on (http://\S+)", "".join(seen[-1:]))):
                line = (await process.stderr.readline()).decode()
                assert line, "fulmen server exited early:\n" + "".join(seen)
                seen.append(line)
        yield Started(match.group(1), seen)
    finally:
        process.terminate()
        await process.communicate()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_data_dir_and_its_files_are_the_owners_only(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    async with fulmen_server(data) as server, httpx2.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/health/ready")).status_code == 200
        assert {p.name: oct(mode(p)) for p in [tmp_path / "new", data]} == {
            "new": "0o700",
            "data": "0o700",
        }
        files = {p.name: oct(mode(p)) for p in data.iterdir()}
        assert files == {
            "credential.key": "0o600",
            "fulmen.db": "0o600",
            "fulmen.db-wal": "0o600",
            "fulmen.db-shm": "0o600",
            "fulmen.db.lock": "0o600",
        }
    assert not [line for line in server.log if "readable by other users" in line]


async def test_a_looser_existing_data_dir_is_reported_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with fulmen_server(data):
        pass
    data.chmod(0o755)
    (data / "fulmen.db").chmod(0o644)
    (data / "credential.key").chmod(0o640)
    async with fulmen_server(data) as server:
        warnings = [line for line in server.log if "readable by other users" in line]
    # one line for the store's files, one for the coordinator's key; modes left as they were
    assert len(warnings) == 2, server.log
    [store_line] = [line for line in warnings if "SQLite" in line]
    assert f"{data} (0755)" in store_line and f"{data / 'fulmen.db'} (0644)" in store_line
    assert "credential.key (0640)" in "".join(warnings)
    assert (mode(data), mode(data / "fulmen.db")) == (0o755, 0o644)
