"""The runner's state file on the store's machinery: versioned, and a file from before is kept.

Before the runner's schema was versioned, its tables were made with ``CREATE TABLE IF NOT
EXISTS`` (and, for files made before rows were signed, without the ``mac`` column). Such a
file must open with every worker, config, run and key it holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from fulmen.errors import RunnerError, StoreError
from fulmen.runner.registry import Identity, Registry, WorkerRecord

#: The tables as the runner made them before its schema was versioned (no ``mac`` column).
UNVERSIONED = """
CREATE TABLE workers (
    id TEXT PRIMARY KEY, name TEXT UNIQUE, type TEXT NOT NULL, script TEXT NOT NULL,
    script_sha256 TEXT NOT NULL, schedule TEXT, timezone TEXT NOT NULL, events TEXT NOT NULL,
    args TEXT NOT NULL, policy TEXT NOT NULL, identity_name TEXT, identity_id BLOB NOT NULL,
    run_on_create INTEGER NOT NULL, error_policy TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, last_run REAL, next_run REAL);
CREATE TABLE sealed_configs (
    worker_id TEXT PRIMARY KEY REFERENCES workers(id) ON DELETE CASCADE, blob BLOB NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id TEXT NOT NULL REFERENCES workers(id) ON DELETE CASCADE,
    trigger TEXT NOT NULL, scheduled_at REAL, started_at REAL NOT NULL, ended_at REAL,
    outcome TEXT NOT NULL, error TEXT);
CREATE TABLE sealed_keys (
    store TEXT NOT NULL, identity_id BLOB NOT NULL, blob BLOB NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (store, identity_id));
CREATE TABLE identities (
    name TEXT PRIMARY KEY, identity_id BLOB NOT NULL UNIQUE, policy TEXT NOT NULL,
    token_sha256 BLOB NOT NULL);
INSERT INTO workers VALUES ('w1', 'old', 'python', 'print(1)', 'ab', NULL, 'UTC', '["cron"]',
    '{"a": 1}', '{"allow": []}', NULL, x'0102', 1, 'continue', 'ready', 1700000000.5, NULL,
    NULL);
INSERT INTO sealed_configs VALUES ('w1', x'01ff');
INSERT INTO runs (worker_id, trigger, started_at, ended_at, outcome)
    VALUES ('w1', 'cron', 1700000001.0, 1700000002.0, 'ok');
INSERT INTO sealed_keys VALUES ('omni', x'0102', x'01aa', 1700000000.0);
"""


def worker(worker_id: str, name: str) -> WorkerRecord:
    return WorkerRecord(
        id=worker_id, name=name, type="python", script="print(2)", script_sha256="cd",
        schedule="*/5 * * * *", timezone="UTC", events=("http",), args={"k": [1, 2]},
        policy={"allow": ["x"]}, identity_name=None, identity_id=b"\x00\x01",
        run_on_create=False, error_policy="terminate", state="ready", created_at=1.25,
    )  # fmt: skip


def test_a_state_file_from_before_versioning_opens_with_everything_it_held(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runner.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(UNVERSIONED)

    async def main() -> None:
        registry = await Registry.open(str(path))
        try:
            [old] = await registry.workers()
            assert (old.name, old.events, old.args, old.run_on_create) == (
                "old", ("cron",), {"a": 1}, True,
            )  # fmt: skip
            assert await registry.macs() == {"w1": None}  # unsigned: signed at the next start
            assert await registry.sealed_config("w1") == b"\x01\xff"
            assert [run.outcome for run in await registry.runs("w1", 10)] == ["ok"]
            assert await registry.sealed_key("omni", b"\x01\x02") == b"\x01\xaa"
            await registry.set_mac("w1", b"mac")
            assert await registry.macs() == {"w1": b"mac"}
        finally:
            await registry.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


def test_the_registry_round_trips_workers_runs_keys_and_identities(tmp_path: Path) -> None:
    async def main() -> None:
        registry = await Registry.open(str(tmp_path / "state" / "runner.db"))
        try:
            record = worker("w2", "new")
            await registry.add_worker(record, b"sealed", b"mac")
            assert await registry.workers() == [record]
            with pytest.raises(RunnerError) as taken:
                await registry.add_worker(worker("w3", "new"), b"s", b"m")
            assert taken.value.code == "name_taken"
            assert [w.id for w in await registry.workers()] == ["w2"]  # nothing half-stored
            run_id = await registry.add_run("w2", "http", started_at=2.0)
            await registry.finish_run(run_id, ended_at=3.0, outcome="ok", error=None)
            [run] = await registry.runs("w2", 5)
            assert (run.id, run.ended_at, run.outcome) == (run_id, 3.0, "ok")
            await registry.set_times("w2", last_run=None, next_run=9.0)
            assert (await registry.workers())[0].next_run == 9.0
            await registry.insert_sealed_key("omni", b"i", b"first", 1.0)
            await registry.insert_sealed_key("omni", b"i", b"second", 2.0)
            assert await registry.sealed_key("omni", b"i") == b"first"
            identity = Identity("ops", b"\x09", {"allow": ["w2"]}, b"\x07")
            await registry.add_identity(identity)
            assert await registry.identity("ops") == identity
            with pytest.raises(RunnerError):
                await registry.add_identity(identity)
            await registry.remove_worker("w2")
            assert await registry.sealed_config("w2") is None
            assert await registry.runs("w2", 5) == []
        finally:
            await registry.close()

    asyncio.run(main())


def test_a_state_file_from_a_newer_runner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runner.db"

    async def open_and_close() -> None:
        await (await Registry.open(str(path))).close()

    asyncio.run(open_and_close())
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (7, '0007_x.sql', '')"
        )
    with pytest.raises(StoreError) as refused:
        asyncio.run(open_and_close())
    assert refused.value.code == "schema_newer"
