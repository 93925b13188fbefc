"""What the coordinator leaves on disk (issue 13): its data directory and database files are
its owner's only, whatever the umask, and a body that retention erased is gone from the
database file and its WAL, not only from what the API shows.

The file modes are checked on ``fulmen server`` itself, started as an operator would under
the common umask 022; the erasing on a real SQLite file, through real HTTP and a real worker
socket (a webhook's body, wiped when its ``erase_all`` run ends) and through the retention
sweep."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

import httpx2
import pytest

from fulmen.plan import Options
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewDataclip,
    RetentionPolicy,
    RunCompletion,
    SQLStore,
)
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import RawWorker, keys, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

TS = "1760000000000000"
#: What a caller sent and retention must erase: a short value, and one long enough to need
#: SQLite overflow pages (over a 4 KiB page).
MARKER = "patient-7c1e-hiv-positive"
LONG = "x-ray-report-5d2b " * 400
#: A megabyte: more than SQLite's statement journal keeps in memory by default (64 KiB).
HUGE = "x-ray-report-5d2b " * 60_000


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
            "fulmen.db.coordinator": "0o600",  # held while the coordinator runs (store/sole.py)
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


# -- erasing ----------------------------------------------------------------------------------


def on_disk(database: Path) -> bytes:
    """The database file and its WAL, as someone who can read them would."""
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def assert_erased(database: Path) -> None:
    data = on_disk(database)
    assert MARKER.encode() not in data
    assert LONG[:40].encode() not in data


async def test_an_erase_all_runs_input_leaves_no_trace_in_the_files(tmp_path: Path) -> None:
    database = tmp_path / "fulmen.db"
    async with sqlite_store(str(database)) as store:
        seeded = await seed(store)
        project = await store.get_project(seeded.project_id)
        await store.replace_project(replace(project, retention_policy=RetentionPolicy.ERASE_ALL))
        async with serve(store) as served, httpx2.AsyncClient(base_url=served.base_url) as http:
            posted = await http.post(
                f"/i/{seeded.webhook_id}", json={"diagnosis": MARKER, "report": LONG}
            )
            assert posted.status_code == 200, posted.text
            assert MARKER.encode() in on_disk(database)  # the test can see a body
            async with RawWorker.connect(served.socket_url) as worker:
                await worker.join("worker:queue", {})
                _, claimed = await worker.call(
                    "worker:queue",
                    "claim",
                    {"demand": 1, "languages": ["python"], "worker_name": None},
                )
                [run] = claimed["runs"]
                topic = f"run:{run['id']}"
                assert (await worker.join(topic, {"token": run["token"]}))[0] == "ok"
                _, plan = await worker.call(topic, "fetch:plan", {})
                assert (await worker.call(topic, "run:start", {"timestamp": TS}))[0] == "ok"
                done = {"reason": "success", "timestamp": TS}
                # the reply comes once the run's end, and the wipe with it, is on disk
                assert await worker.call(topic, "run:complete", done) == ("ok", None)
        clip = await store.get_dataclip(plan["dataclip_id"])
        assert clip.body is None and clip.wiped_at is not None
        assert_erased(database)


@pytest.mark.parametrize("period", ["dataclip_retention_period", "history_retention_period"])
async def test_a_retention_sweep_leaves_no_trace_in_the_files(tmp_path: Path, period: str) -> None:
    """Bodies past their period are wiped (rows kept), or past the history's deleted."""
    database = tmp_path / "fulmen.db"
    clock = FakeClock()
    async with sqlite_store(str(database), clock=clock) as store:
        seeded = await seed(store)
        project = await store.get_project(seeded.project_id)
        await store.replace_project(replace(project, **{period: 1}))
        await finished_run(store, seeded.workflow_id, seeded.webhook_id)
        assert MARKER.encode() in on_disk(database)
        clock.advance(days=2)
        batch = await store.sweep_retention(seeded.project_id, limit=100)
        assert batch.wiped_dataclips + batch.deleted_dataclips == 1, batch
        assert_erased(database)


@pytest.mark.parametrize("erasing", ["wipe", "retention", "deleting the project"])
async def test_a_large_body_never_reaches_a_temporary_file(tmp_path: Path, erasing: str) -> None:
    """SQLite keeps the former content of the pages a savepoint changes in its statement
    journal, which it spills to an unlinked temporary file (``/var/tmp/etilqs_*``) past
    64 KiB: erasing a body of a megabyte wrote it there in clear, to stay in the disk's free
    blocks after its wipe. The store keeps that journal in memory."""
    database = tmp_path / "fulmen.db"
    clock = FakeClock()
    async with sqlite_store(str(database), clock=clock) as store:
        seeded = await seed(store)
        project = await store.get_project(seeded.project_id)
        await store.replace_project(replace(project, dataclip_retention_period=1))
        dataclip_id = await finished_run(store, seeded.workflow_id, seeded.webhook_id, HUGE)
        with temporary_files_opened(store) as opened:
            if erasing == "wipe":
                await store.wipe_dataclip(dataclip_id)
            elif erasing == "retention":
                clock.advance(days=2)
                assert (await store.sweep_retention(seeded.project_id)).wiped_dataclips == 1
            else:
                await store.delete_project(seeded.project_id)
        assert opened == []
        assert_erased(database)


@contextmanager
def temporary_files_opened(store: SQLStore) -> Iterator[list[str]]:
    """The temporary files SQLite holds open at any statement of the store's connections
    (it unlinks them at once: only the descriptor shows them)."""
    opened: list[str] = []

    def look(_: str) -> None:
        for fd in os.listdir("/proc/self/fd"):
            with suppress(OSError):
                if "etilqs_" in (target := os.readlink(f"/proc/self/fd/{fd}")):
                    opened.append(target)

    connections = (store._db._writer, store._db._reader)  # type: ignore[attr-defined]
    for connection in connections:
        connection.set_trace_callback(look)
    try:
        yield opened
    finally:
        for connection in connections:
            connection.set_trace_callback(None)


async def finished_run(
    store: SQLStore, workflow_id: str, trigger_id: str, report: str = LONG
) -> str:
    """A run of that input that succeeded; its input's dataclip."""
    enqueued = await store.enqueue(
        EnqueueRequest(
            workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"diagnosis": MARKER, "report": report}),
            trigger_id=trigger_id,
            options=Options(run_timeout_ms=60_000),
        )
    )
    await store.claim(1, ["*"], "worker-1")
    await store.join_run(enqueued.run_id)
    await store.start_run(enqueued.run_id)
    await store.complete_run(enqueued.run_id, RunCompletion(ExitReason(Reason.SUCCESS)))
    assert enqueued.dataclip_id is not None
    return enqueued.dataclip_id
