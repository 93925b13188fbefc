"""The runner's SQLite file: workers, their sealed configs, run history, sealed keys, identities.

Kept with the store's machinery (fulmen.store.sqlite): named queries and numbered schema files
in ``fulmen/runner/sql/sqlite/``, migrations with checksums, WAL with ``synchronous=FULL``
and group commit, so that a created worker is on disk before its ``201``. Only the runner
opens this file; a worker's sandbox cannot reach the state directory (spec runner.md
§3.6-§3.7). Configs and keys are stored only sealed (``sealing.py``). A worker's row is
stored in plain text with the runner's signature of it (``mac``, over
:meth:`WorkerRecord.signed`), which the runner checks before it starts the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fulmen.errors import ConflictError, RunnerError
from fulmen.store.db import Row, dumps, loads
from fulmen.store.sqlite import SQLiteDatabase, add_column_to_unversioned

__all__ = ["Identity", "Registry", "RunRecord", "WorkerRecord"]

#: Where the runner's SQL lives (``sql/sqlite/queries.sql`` and ``schema/``).
SQL_PACKAGE: Final = "fulmen.runner"


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

    def params(self) -> dict[str, Any]:
        """The row's columns, as the ``insert_worker`` query names them."""
        return {
            "id": self.id, "name": self.name, "type": self.type, "script": self.script,
            "script_sha256": self.script_sha256, "schedule": self.schedule,
            "timezone": self.timezone, "events": dumps(list(self.events)),
            "args": dumps(self.args), "policy": dumps(self.policy),
            "identity_name": self.identity_name, "identity_id": self.identity_id,
            "run_on_create": self.run_on_create, "error_policy": self.error_policy,
            "state": self.state, "created_at": self.created_at, "last_run": self.last_run,
            "next_run": self.next_run,
        }  # fmt: skip

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
    def from_row(cls, row: Row) -> WorkerRecord:
        return cls(
            id=row["id"], name=row["name"], type=row["type"], script=row["script"],
            script_sha256=row["script_sha256"], schedule=row["schedule"],
            timezone=row["timezone"], events=tuple(loads(row["events"])),
            args=loads(row["args"]), policy=loads(row["policy"]),
            identity_name=row["identity_name"], identity_id=bytes(row["identity_id"]),
            run_on_create=bool(row["run_on_create"]), error_policy=row["error_policy"],
            state=row["state"], created_at=row["created_at"], last_run=row["last_run"],
            next_run=row["next_run"],
        )  # fmt: skip


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

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str) -> Registry:
        # A file from before the schema was versioned may lack the column 0001 expects.
        await add_column_to_unversioned(Path(path), "workers", "mac", "BLOB")
        return cls(await SQLiteDatabase.open(Path(path), package=SQL_PACKAGE))

    async def close(self) -> None:
        await self._db.close()

    async def _write(self, query: str, params: dict[str, Any]) -> None:
        async with self._db.write() as tx:
            await tx.execute(query, params)

    async def _one(self, query: str, params: dict[str, Any]) -> Row | None:
        async with self._db.read() as tx:
            return await tx.fetchone(query, params)

    async def _all(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self._db.read() as tx:
            return await tx.fetchall(query, params)

    # -- workers ---------------------------------------------------------------------------

    async def add_worker(self, worker: WorkerRecord, sealed_config: bytes, mac: bytes) -> None:
        """Store a worker, its signature and its sealed config in one transaction.

        Raises:
            RunnerError: ``name_taken`` when a live worker already has the name.
        """
        try:
            async with self._db.write() as tx:
                await tx.execute("insert_worker", worker.params() | {"mac": mac})
                await tx.execute(
                    "insert_sealed_config", {"worker_id": worker.id, "blob": sealed_config}
                )
        except ConflictError:
            raise RunnerError(f"a worker named {worker.name!r} exists", code="name_taken") from None

    async def remove_worker(self, worker_id: str) -> None:
        """Drop the worker, its sealed config and its run history (not its keys)."""
        await self._write("delete_worker", {"id": worker_id})

    async def workers(self) -> list[WorkerRecord]:
        return [WorkerRecord.from_row(row) for row in await self._all("list_workers")]

    async def macs(self) -> dict[str, bytes | None]:
        """Each worker's stored signature; ``None`` for a row from before rows were signed."""
        return {
            row["id"]: None if row["mac"] is None else bytes(row["mac"])
            for row in await self._all("list_macs")
        }

    async def set_mac(self, worker_id: str, mac: bytes) -> None:
        await self._write("set_mac", {"id": worker_id, "mac": mac})

    async def set_state(self, worker_id: str, state: str) -> None:
        await self._write("set_state", {"id": worker_id, "state": state})

    async def set_times(
        self, worker_id: str, *, last_run: float | None, next_run: float | None
    ) -> None:
        await self._write(
            "set_times", {"id": worker_id, "last_run": last_run, "next_run": next_run}
        )

    async def sealed_config(self, worker_id: str) -> bytes | None:
        row = await self._one("get_sealed_config", {"worker_id": worker_id})
        return None if row is None else bytes(row["blob"])

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
        async with self._db.write() as tx:
            row = await tx.fetchone(
                "insert_run",
                {
                    "worker_id": worker_id, "trigger": trigger, "scheduled_at": scheduled_at,
                    "started_at": started_at, "ended_at": ended_at, "outcome": outcome,
                    "error": error,
                },
            )  # fmt: skip
        assert row is not None  # RETURNING
        return int(row["id"])

    async def finish_run(
        self, run_id: int, *, ended_at: float, outcome: str, error: str | None
    ) -> None:
        await self._write(
            "finish_run", {"id": run_id, "ended_at": ended_at, "outcome": outcome, "error": error}
        )

    async def runs(self, worker_id: str, limit: int) -> list[RunRecord]:
        rows = await self._all("list_runs", {"worker_id": worker_id, "limit": limit})
        return [RunRecord(**row) for row in rows]

    # -- sealed keys -----------------------------------------------------------------------

    async def insert_sealed_key(
        self, store: str, identity_id: bytes, blob: bytes, now: float
    ) -> None:
        """Store a sealed key unless one exists for ``(store, identity_id)``: the first wins."""
        await self._write(
            "insert_sealed_key",
            {"store": store, "identity_id": identity_id, "blob": blob, "created_at": now},
        )

    async def sealed_key(self, store: str, identity_id: bytes) -> bytes | None:
        row = await self._one("get_sealed_key", {"store": store, "identity_id": identity_id})
        return None if row is None else bytes(row["blob"])

    async def delete_sealed_key(self, store: str, identity_id: bytes) -> None:
        await self._write("delete_sealed_key", {"store": store, "identity_id": identity_id})

    # -- named identities ------------------------------------------------------------------

    async def add_identity(self, identity: Identity) -> None:
        """Raises RunnerError ``name_taken`` if the name is in use."""
        try:
            await self._write(
                "insert_identity",
                {
                    "name": identity.name, "identity_id": identity.identity_id,
                    "policy": dumps(identity.policy), "token_sha256": identity.token_sha256,
                },
            )  # fmt: skip
        except ConflictError:
            raise RunnerError(
                f"an identity named {identity.name!r} exists", code="name_taken"
            ) from None

    async def identity(self, name: str) -> Identity | None:
        row = await self._one("get_identity", {"name": name})
        if row is None:
            return None
        return Identity(
            row["name"], bytes(row["identity_id"]), loads(row["policy"]), bytes(row["token_sha256"])
        )

    async def set_identity_policy(self, name: str, policy: dict[str, Any]) -> None:
        await self._write("set_identity_policy", {"name": name, "policy": dumps(policy)})
