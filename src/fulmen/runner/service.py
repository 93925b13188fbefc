"""The runner itself: smart workers, their triggers and their bindings, without HTTP.

:class:`Runner` owns everything with a lifetime: the state directory (locked, so two runners
never share one), the master key, the registry, the sandbox zygote, one
:class:`~fulmen.runner.supervisor.WorkerProcess` per worker, and the scheduler. ``api.py``
turns HTTP into calls here and back; nothing here knows about HTTP.

Creating a worker follows the spec's order (runner.md §3.3): everything is validated first
(``spec.parse``), then the worker is stored, then its process started, and the reply waits for
the script to load. If it does not load, or lacks the handler a requested trigger needs,
everything is removed again and the caller gets ``script_load_failed``: nothing is created.

What starts handlers is ``triggers.py``; what happened while the runner was down is here:
fires missed meanwhile are recorded once as ``missed`` at start and not replayed.

A stored worker starts only if its row verifies against the runner's signature
(``Sealer.sign`` over ``WorkerRecord.signed``): a row whose script, identity or settings were
changed in ``runner.db`` behind the runner's back would otherwise run under the victim's
identity, with its key and config. Such a worker is ``refused``: logged (naming it) at
start, never started, listed so that it can be deleted, and not restarted. Rows from before
rows were signed have no signature; they were written by this runner, so the first start
that finds them signs them, and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, Final

from fulmen import cron
from fulmen.clock import SYSTEM_CLOCK, Clock
from fulmen.config import RunnerSettings
from fulmen.errors import ConfigError, RunnerError
from fulmen.runner.bindings import Bindings, config_aad
from fulmen.runner.identities import Identities
from fulmen.runner.keystore import KeyStore, KeyStores, LocalKeyStore, MemoryKeyStore
from fulmen.runner.logbook import Logbook
from fulmen.runner.policy import Evidence, default_identity
from fulmen.runner.registry import Registry, RunRecord, WorkerRecord
from fulmen.runner.scheduler import Scheduler
from fulmen.runner.sealing import Sealer, load_master_key
from fulmen.runner.spec import WorkerSpec
from fulmen.runner.supervisor import REFUSED, SupervisorSettings, WorkerProcess
from fulmen.runner.times import iso
from fulmen.runner.triggers import Triggers
from fulmen.sandbox import IsolationReport, Zygote

__all__ = ["PRELOAD", "Runner", "isolation_name"]

PRELOAD: Final = ("fulmen.runner.host", "asyncio", "json", "logging", "base64", "hashlib")
"""What the zygote imports once, so that a worker's process starts without importing it."""
_LIVE: Final = frozenset({"starting", "ready", "crashed"})

log = logging.getLogger(__name__)


def isolation_name(report: IsolationReport) -> str:
    """The sandbox as the key policy's ``min_isolation`` ranks it (``policy.ISOLATION_ORDER``):
    the level itself from L2 up, the older names below it."""
    if report.level in ("none", "L2", "L3"):
        return report.level
    if report.applied("landlock_fs"):
        return "uid" if report.uid != 0 else "landlock"
    return "process"


class Runner:
    """Open with :meth:`open`; :meth:`close` stops every worker (their state is kept)."""

    def __init__(
        self,
        *,
        settings: RunnerSettings,
        registry: Registry,
        sealer: Sealer,
        stores: KeyStores,
        zygote: Zygote,
        logbook: Logbook,
        clock: Clock,
        lock_fd: int,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.logbook = logbook
        self.clock = clock
        self.identities = Identities(registry)
        self.sandbox: IsolationReport = zygote.isolation
        self.isolation = isolation_name(self.sandbox)
        self._sealer = sealer
        self._stores = stores
        self._zygote = zygote
        self._lock_fd = lock_fd
        self._workers: dict[str, WorkerProcess] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.triggers = Triggers(self)
        self.scheduler = Scheduler(clock, self.triggers.on_cron)
        self._bindings = Bindings(
            registry, sealer, stores, self._evidence, self.triggers.worker_emit
        )
        self._supervision = SupervisorSettings(
            load_timeout=settings.load_timeout,
            backoff_min=settings.restart_backoff_min,
            backoff_max=settings.restart_backoff_max,
            crash_limit=settings.crash_limit,
            crash_window=settings.crash_window,
            memory_mb=settings.worker_memory_mb,
            cancel_grace=settings.cancel_grace,
        )
        self._scheduler_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, settings: RunnerSettings, *, clock: Clock | None = None, memory_store: bool = True
    ) -> Runner:
        """Lock the state directory, read the master key, start the sandbox, resume workers.

        Raises:
            ConfigError: the state directory is in use or the master key is unusable.
            SandboxError: the sandbox cannot start, or gives less than
                ``settings.sandbox.isolation``.
        """
        state = os.path.abspath(settings.state_dir)
        os.makedirs(state, mode=0o700, exist_ok=True)
        os.chmod(state, 0o700)
        lock_fd = _lock(state)
        try:
            key_path = settings.master_key_file or os.path.join(state, "master.key")
            sealer = Sealer(load_master_key(key_path, create=settings.master_key_file is None))
            registry = await Registry.open(os.path.join(state, "runner.db"))
        except BaseException:
            os.close(lock_fd)
            raise
        clock = clock or SYSTEM_CLOCK
        stores: list[KeyStore] = [LocalKeyStore(registry, sealer)]
        if memory_store:
            stores.append(MemoryKeyStore())
        sandbox = settings.sandbox
        try:
            zygote = await Zygote.start(
                preload=PRELOAD,
                minimum_level=sandbox.isolation,
                network=sandbox.network,
                allow=sandbox.allow_net,
            )
        except BaseException:
            await registry.close()
            os.close(lock_fd)
            raise
        logbook = Logbook(os.path.join(state, "logs"), clock)
        runner = cls(
            settings=settings,
            registry=registry,
            sealer=sealer,
            stores=KeyStores(stores),
            zygote=zygote,
            logbook=logbook,
            clock=clock,
            lock_fd=lock_fd,
        )
        await runner._resume()
        return runner

    async def close(self) -> None:
        """Stop the scheduler and every process; workers stay stored as they were."""
        self._closing = True
        if self._scheduler_task is not None:
            self._scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler_task
        await asyncio.gather(*(w.stop() for w in self._workers.values()))
        # With every process gone, in-flight runs end at once and record how; let them,
        # and the state writes queued before them, reach the file.
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._zygote.close()
        await self.registry.close()
        os.close(self._lock_fd)

    # -- workers ---------------------------------------------------------------------------

    async def create(self, spec: WorkerSpec) -> dict[str, Any]:
        """Store and start a worker; returns its summary once its script has loaded.

        Raises:
            RunnerError: ``too_many_workers``, ``bad_request`` (unknown identity),
                ``name_taken``, ``script_load_failed``.
        """
        if len(self._workers) >= self.settings.max_workers:
            raise RunnerError(
                f"this runner holds at most {self.settings.max_workers} workers",
                code="too_many_workers",
            )
        record = await self._new_record(spec)
        sealed = self._sealer.seal(json.dumps(spec.config).encode(), config_aad(record.id))
        await self.registry.add_worker(record, sealed, self._sealer.sign(record.signed()))
        self.logbook.mask(record.id, spec.config)
        process = self._workers[record.id] = self._process(record)
        try:
            await process.start()
            _check_handlers(spec, process.handlers)
        except BaseException:
            await self._discard(record.id)
            raise
        self._schedule(record, after=self.clock.now())
        if spec.run_on_create and "tasks" in process.handlers:
            await self.triggers.run_now(record.id, trigger_kind="create")
        return self.summary(process)

    async def delete(self, ref: str, *, purge_key: bool = False) -> None:
        """Stop and forget a worker: process, triggers, script, config, runs, logs.

        Its omni key is kept (another worker with the same identity would get it) unless
        ``purge_key`` and no other worker has the identity. Raises ``not_found``, and
        ``refused`` for ``purge_key`` on a refused worker (its identity is not to be trusted).
        """
        process = self.get(ref)
        if purge_key and process.state == REFUSED:
            raise RunnerError(
                f"worker {process.record.id} is refused (its stored record does not verify), "
                "so the identity it names is not trusted with purge_key; delete it without",
                code="refused",
            )
        await self._discard(process.record.id)
        record = process.record
        shared = any(w.record.identity_id == record.identity_id for w in self._workers.values())
        if purge_key and record.identity_name is None and not shared:
            for name in self._stores.names:
                await self._stores.get(name).destroy(record.identity_id)

    async def restart(self, ref: str) -> None:
        """A fresh process and a clear crash count (how a ``failed`` worker comes back).

        Raises ``not_found``; ``refused`` for a worker whose stored record does not verify.
        """
        old = self.get(ref)
        if old.state == REFUSED:
            raise RunnerError(
                f"worker {old.record.id} is refused: its stored record does not verify, "
                "so it is never started",
                code="refused",
            )
        await old.stop()
        process = self._workers[old.record.id] = self._process(old.record)
        process.last_run = old.last_run
        await process.start(tolerate_failure=True)

    def get(self, ref: str) -> WorkerProcess:
        """The worker with this id, or else this name. Raises ``not_found``."""
        process = self._workers.get(ref)
        if process is None:
            process = next((w for w in self._workers.values() if w.record.name == ref), None)
        if process is None:
            raise RunnerError(f"no worker {ref!r}", code="not_found")
        return process

    def find(self, worker_id: str) -> WorkerProcess | None:
        return self._workers.get(worker_id)

    def workers(self) -> list[WorkerProcess]:
        return list(self._workers.values())

    def summary(self, process: WorkerProcess) -> dict[str, Any]:
        """What the API shows of a worker: never its config, never its script."""
        r = process.record
        next_run = self.scheduler.next_run(r.id)
        return {
            "id": r.id,
            "name": r.name,
            "type": r.type,
            "state": process.state,
            "schedule": r.schedule,
            "timezone": r.timezone,
            "events": list(r.events),
            "created_at": iso(r.created_at),
            "last_run": iso(process.last_run),
            "next_run": next_run.isoformat() if next_run else None,
            "isolation": self.isolation,
            "identity_id": r.identity_id.hex(),
            "identity": r.identity_name,
            "script_sha256": r.script_sha256,
            "handlers": sorted(process.handlers),
            "pid": process.pid,
            "args": r.args,
            "error_policy": r.error_policy,
        }

    async def runs(self, ref: str, limit: int) -> list[RunRecord]:
        return await self.registry.runs(self.get(ref).record.id, limit)

    # -- internals: workers ----------------------------------------------------------------

    async def _new_record(self, spec: WorkerSpec) -> WorkerRecord:
        if spec.identity is not None:
            identity = await self.registry.identity(spec.identity)
            if identity is None:
                raise RunnerError(f"no identity named {spec.identity!r}", code="bad_request")
            identity_id = identity.identity_id
        else:
            identity_id = default_identity(spec.script_sha256, spec.type, spec.policy)
        return WorkerRecord(
            id=str(uuid.uuid4()),
            name=spec.name,
            type=spec.type,
            script=spec.script,
            script_sha256=spec.script_sha256,
            schedule=spec.schedule,
            timezone=spec.timezone,
            events=spec.events,
            args=spec.args,
            policy=spec.policy,
            identity_name=spec.identity,
            identity_id=identity_id,
            run_on_create=spec.run_on_create,
            error_policy=spec.error_policy,
            state="starting",
            created_at=self.clock.now().timestamp(),
        )

    def _process(self, record: WorkerRecord) -> WorkerProcess:
        return WorkerProcess(
            record,
            zygote=self._zygote,
            serve=self._bindings.serve,
            logbook=self.logbook,
            clock=self.clock,
            settings=self._supervision,
            on_state=self._on_state,
        )

    async def _discard(self, worker_id: str) -> None:
        self.scheduler.remove(worker_id)
        process = self._workers.pop(worker_id, None)
        if process is not None:
            await process.stop()
        await self.registry.remove_worker(worker_id)
        self.logbook.remove(worker_id)

    async def _resume(self) -> None:
        """Bring back every stored worker that is not stopped, with its schedule."""
        now = self.clock.now()
        starting = []
        macs = await self.registry.macs()
        for record in await self.registry.workers():
            process = self._workers[record.id] = self._process(record)
            await self._mask_config(record)
            if not await self._verified(record, macs.get(record.id)):
                process.state = REFUSED
                continue
            if record.state == "stopped":
                process.state = "stopped"
                continue
            if record.next_run is not None and record.next_run < now.timestamp():
                await self._record_missed(record)
            self._schedule(record, after=now)
            starting.append(process.start(tolerate_failure=True))
        await asyncio.gather(*starting)
        self._scheduler_task = asyncio.get_running_loop().create_task(self.scheduler.run())

    async def _verified(self, record: WorkerRecord, mac: bytes | None) -> bool:
        """Whether the stored worker is the one this runner stored; a row without a
        signature (from before rows were signed) is signed now."""
        who = f"worker {record.id}" + (f" ({record.name})" if record.name else "")
        if mac is None:
            await self.registry.set_mac(record.id, self._sealer.sign(record.signed()))
            line = f"{who} was stored before workers were signed; signed it now as it is"
            log.warning("%s", line)
            self.logbook.write(record.id, "runner", line, event="signed")
            return True
        if self._sealer.verify(record.signed(), mac):
            return True
        line = (
            f"{who} refused: its stored record (script, identity or settings) does not verify "
            "against this runner's signature: runner.db was changed outside the runner, or "
            "the master key is another one. It is not started; delete it, or restore runner.db"
        )
        log.error("%s", line)
        self.logbook.write(record.id, "runner", line, event="refused")
        return False

    async def _mask_config(self, record: WorkerRecord) -> None:
        """Have the logbook mask the worker's config values in what it writes about it."""
        try:
            config = await self._bindings.config(record)
        except RunnerError as exc:  # KeyStoreError too: the worker cannot read it either
            log.warning("worker %s: its config cannot be read: %s", record.id, exc.message)
            return
        self.logbook.mask(record.id, config)

    def _schedule(self, record: WorkerRecord, *, after: datetime) -> None:
        if record.schedule is None:
            return
        when = self.scheduler.set(record.id, cron.parse(record.schedule, record.timezone), after)
        self.spawn(self.registry.set_times(record.id, last_run=None, next_run=when.timestamp()))

    async def _record_missed(self, record: WorkerRecord) -> None:
        assert record.next_run is not None
        now = self.clock.now().timestamp()
        await self.registry.add_run(
            record.id,
            "cron",
            started_at=now,
            scheduled_at=record.next_run,
            outcome="missed",
            ended_at=now,
        )
        self.logbook.write(
            record.id,
            "runner",
            "fires missed while the runner was down are not replayed",
            event="missed",
            scheduled_at=record.next_run,
        )

    def _on_state(self, worker_id: str, state: str) -> None:
        if not self._closing and worker_id in self._workers:
            self.spawn(self.registry.set_state(worker_id, state))

    def _evidence(self, record: WorkerRecord) -> Evidence:
        live = sum(
            1
            for w in self._workers.values()
            if w.record.identity_id == record.identity_id and w.state in _LIVE
        )
        return Evidence(
            worker_id=record.id,
            script_sha256=record.script_sha256,
            type=record.type,
            isolation=self.isolation,
            now=self.clock.now().timestamp(),
            live_instances=live,
        )

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _check_handlers(spec: WorkerSpec, handlers: frozenset[str]) -> None:
    if spec.schedule is not None and "tasks" not in handlers:
        raise RunnerError(
            "script failed to load: a schedule needs a tasks handler", code="script_load_failed"
        )
    if spec.events and "event" not in handlers:
        raise RunnerError(
            "script failed to load: events need an on_event handler", code="script_load_failed"
        )


def _lock(state_dir: str) -> int:
    fd = os.open(
        os.path.join(state_dir, "runner.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"state directory {state_dir} is in use by another runner", code="conflict"
        ) from None
    return fd
