"""The runner's SQLite file: workers, their sealed configs, run history, sealed keys, identities.

One connection (aiosqlite: its own thread, so the event loop never waits on the disk), WAL,
``synchronous=FULL`` so that a created worker is on disk before its ``201``. Writes are one
transaction each. Only the runner opens this file; a worker's sandbox cannot reach the state
directory (spec runner.md §3.6-§3.7). Configs and keys are stored only sealed (``sealing.py``).
A worker's row is stored in plain text with the runner's signature of it (``mac``, over
:meth:`WorkerRecord.signed`), which the runner checks before it starts the worker.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from fulmen.errors import RunnerError

__all__ = ["Identity", "Registry", "RunRecord", "WorkerRecord"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, name TEXT UNIQUE, type TEXT NOT NULL, script TEXT NOT NULL,
    script_sha256 TEXT NOT NULL, schedule TEXT, timezone TEXT NOT NULL, events TEXT NOT NULL,
    args TEXT NOT NULL, policy TEXT NOT NULL, identity_name TEXT, identity_id BLOB NOT NULL,
    run_on_create INTEGER NOT NULL, error_policy TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, last_run REAL, next_run REAL, mac BLOB);
CREATE TABLE IF NOT EXISTS sealed_configs (
    worker_id TEXT PRIMARY KEY REFERENCES workers(id) ON DELETE CASCADE, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    worker_id TEXT NOT NULL REFERENCES workers(id) ON DELETE CASCADE,
    trigger TEXT NOT NULL, scheduled_at REAL, started_at REAL NOT NULL, ended_at REAL,
    outcome TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS runs_by_worker ON runs (worker_id, id);
CREATE TABLE IF NOT EXISTS sealed_keys (
    store TEXT NOT NULL, identity_id BLOB NOT NULL, blob BLOB NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (store, identity_id));
CREATE TABLE IF NOT EXISTS identities (
    name TEXT PRIMARY KEY, identity_id BLOB NOT NULL UNIQUE, policy TEXT NOT NULL,
    token_sha256 BLOB NOT NULL);
"""
_WORKER_COLUMNS: Final = (
    "id, name, type, script, script_sha256, schedule, timezone, events, args, policy, "
    "identity_name, identity_id, run_on_create, error_policy, state, created_at, last_run, "
    "next_run"
)


@dataclass(frozen=True)
class WorkerRecord:
    """A worker as stored, without its config (which is stored sealed, apart)."""

    id: str
    name: str | None
    type: str
    script: str
    script_sha256: str
    schedule: str | None
    timezone: str
    events: tuple[str, ...]
    args: dict[str, Any]
    policy: dict[str, Any]
    identity_name: str | None
    identity_id: bytes
    run_on_create: bool
    error_policy: str
    state: str
    created_at: float
    last_run: float | None = None
    next_run: float | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.id, self.name, self.type, self.script, self.script_sha256, self.schedule,
            self.timezone, json.dumps(list(self.events)), json.dumps(self.args),
            json.dumps(self.policy), self.identity_name, self.identity_id,
            int(self.run_on_create), self.error_policy, self.state, self.created_at,
            self.last_run, self.next_run,
        )  # fmt: skip

    def signed(self) -> bytes:
        """What the runner's signature of the row covers: every field fixed at creation (the
        script and its hash, the identity, the policy, the triggers and settings), in
        canonical JSON; not the state or run times, which change."""
        fields = {
            "id": self.id, "name": self.name, "type": self.type, "script": self.script,
            "script_sha256": self.script_sha256, "schedule": self.schedule,
            "timezone": self.timezone, "events": list(self.events), "args": self.args,
            "policy": self.policy, "identity_name": self.identity_name,
            "identity_id": self.identity_id.hex(), "run_on_create": self.run_on_create,
            "error_policy": self.error_policy, "created_at": self.created_at,
        }  # fmt: skip
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return b"smartworker/worker/v1\0" + text.encode()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> WorkerRecord:
        values = list(row)
        for index in (7, 8, 9):
            values[index] = json.loads(values[index])
        values[7] = tuple(values[7])
        values[12] = bool(values[12])
        return cls(*values)


@dataclass(frozen=True)
class RunRecord:
    """One invocation of ``tasks`` (or a fire that did not run: skipped, missed)."""

    id: int
    worker_id: str
    trigger: str
    scheduled_at: float | None
    started_at: float
    ended_at: float | None
    outcome: str
    error: str | None


@dataclass(frozen=True)
class Identity:
    """A named identity: a random id, the policy that says who may hold its key."""

    name: str
    identity_id: bytes
    policy: dict[str, Any]
    token_sha256: bytes


class Registry:
    """The state file. Open with :meth:`open`, end with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection: a statement issued while another coroutine's transaction is open
        # would join (and roll back with) it, so every write takes this lock.
        self._lock = asyncio.Lock()

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int | None:
        """One statement in its own transaction; returns the row id it inserted, if any."""
        async with self._lock:
            cursor = await self._db.execute(sql, params)
            row_id = cursor.lastrowid
            await cursor.close()
            return row_id

    @classmethod
    async def open(cls, path: str) -> Registry:
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                await db.execute(f"PRAGMA {pragma}")
            await db.executescript(_SCHEMA)
            columns = {row[1] for row in await db.execute_fetchall("PRAGMA table_info(workers)")}
            if "mac" not in columns:  # a file from before rows were signed
                await db.execute("ALTER TABLE workers ADD COLUMN mac BLOB")
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # -- workers ---------------------------------------------------------------------------

    async def add_worker(self, worker: WorkerRecord, sealed_config: bytes, mac: bytes) -> None:
        """Store a worker, its signature and its sealed config in one transaction.

        Raises:
            RunnerError: ``name_taken`` when a live worker already has the name.
        """
        async with self._lock:
            await self._add_worker(worker, sealed_config, mac)

    async def _add_worker(self, worker: WorkerRecord, sealed_config: bytes, mac: bytes) -> None:
        marks = ", ".join("?" * (len(worker.row()) + 1))
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.execute(
                f"INSERT INTO workers ({_WORKER_COLUMNS}, mac) VALUES ({marks})",
                (*worker.row(), mac),
            )
            await self._db.execute(
                "INSERT INTO sealed_configs (worker_id, blob) VALUES (?, ?)",
                (worker.id, sealed_config),
            )
            await self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            await self._db.execute("ROLLBACK")
            raise RunnerError(f"a worker named {worker.name!r} exists", code="name_taken") from None
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def remove_worker(self, worker_id: str) -> None:
        """Drop the worker, its sealed config and its run history (not its keys)."""
        await self._write("DELETE FROM workers WHERE id = ?", (worker_id,))

    async def workers(self) -> list[WorkerRecord]:
        rows = await self._db.execute_fetchall(
            f"SELECT {_WORKER_COLUMNS} FROM workers ORDER BY created_at, id"
        )
        return [WorkerRecord.from_row(r) for r in rows]

    async def macs(self) -> dict[str, bytes | None]:
        """Each worker's stored signature; ``None`` for a row from before rows were signed."""
        rows = await self._db.execute_fetchall("SELECT id, mac FROM workers")
        return {worker_id: None if mac is None else bytes(mac) for worker_id, mac in rows}

    async def set_mac(self, worker_id: str, mac: bytes) -> None:
        await self._write("UPDATE workers SET mac = ? WHERE id = ?", (mac, worker_id))

    async def set_state(self, worker_id: str, state: str) -> None:
        await self._write("UPDATE workers SET state = ? WHERE id = ?", (state, worker_id))

    async def set_times(
        self, worker_id: str, *, last_run: float | None, next_run: float | None
    ) -> None:
        await self._write(
            "UPDATE workers SET last_run = coalesce(?, last_run), next_run = ? WHERE id = ?",
            (last_run, next_run, worker_id),
        )

    async def sealed_config(self, worker_id: str) -> bytes | None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT blob FROM sealed_configs WHERE worker_id = ?", (worker_id,)
            )
        )
        return bytes(rows[0][0]) if rows else None

    # -- runs ------------------------------------------------------------------------------

    async def add_run(
        self,
        worker_id: str,
        trigger: str,
        *,
        started_at: float,
        scheduled_at: float | None = None,
        outcome: str = "running",
        ended_at: float | None = None,
        error: str | None = None,
    ) -> int:
        run_id = await self._write(
            "INSERT INTO runs (worker_id, trigger, scheduled_at, started_at, ended_at, outcome,"
            " error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (worker_id, trigger, scheduled_at, started_at, ended_at, outcome, error),
        )
        assert run_id is not None
        return run_id

    async def finish_run(
        self, run_id: int, *, ended_at: float, outcome: str, error: str | None
    ) -> None:
        await self._write(
            "UPDATE runs SET ended_at = ?, outcome = ?, error = ? WHERE id = ?",
            (ended_at, outcome, error, run_id),
        )

    async def runs(self, worker_id: str, limit: int) -> list[RunRecord]:
        rows = await self._db.execute_fetchall(
            "SELECT id, worker_id, trigger, scheduled_at, started_at, ended_at, outcome, error"
            " FROM runs WHERE worker_id = ? ORDER BY id DESC LIMIT ?",
            (worker_id, limit),
        )
        return [RunRecord(*r) for r in rows]

    # -- sealed keys -----------------------------------------------------------------------

    async def insert_sealed_key(
        self, store: str, identity_id: bytes, blob: bytes, now: float
    ) -> None:
        """Store a sealed key unless one exists for ``(store, identity_id)``: the first wins."""
        await self._write(
            "INSERT INTO sealed_keys (store, identity_id, blob, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (store, identity_id, blob, now),
        )

    async def sealed_key(self, store: str, identity_id: bytes) -> bytes | None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT blob FROM sealed_keys WHERE store = ? AND identity_id = ?",
                (store, identity_id),
            )
        )
        return bytes(rows[0][0]) if rows else None

    async def delete_sealed_key(self, store: str, identity_id: bytes) -> None:
        await self._write(
            "DELETE FROM sealed_keys WHERE store = ? AND identity_id = ?", (store, identity_id)
        )

    # -- named identities ------------------------------------------------------------------

    async def add_identity(self, identity: Identity) -> None:
        """Raises RunnerError ``name_taken`` if the name is in use."""
        try:
            await self._write(
                "INSERT INTO identities (name, identity_id, policy, token_sha256)"
                " VALUES (?, ?, ?, ?)",
                (identity.name, identity.identity_id, json.dumps(identity.policy),
                 identity.token_sha256),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise RunnerError(
                f"an identity named {identity.name!r} exists", code="name_taken"
            ) from None

    async def identity(self, name: str) -> Identity | None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT name, identity_id, policy, token_sha256 FROM identities WHERE name = ?",
                (name,),
            )
        )
        if not rows:
            return None
        name, identity_id, policy, token = rows[0]
        return Identity(name, bytes(identity_id), json.loads(policy), bytes(token))

    async def set_identity_policy(self, name: str, policy: dict[str, Any]) -> None:
        await self._write(
            "UPDATE identities SET policy = ? WHERE name = ?", (json.dumps(policy), name)
        )
