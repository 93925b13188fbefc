"""Triggers: what starts a worker's handlers, and the record each run leaves.

``tasks`` runs (at creation, on demand, on schedule) go into the run history; a cron fire
that finds the worker's previous ``tasks`` still running is not started but recorded as
``skipped-overlap`` (spec runner.md §3.4), so runs of one worker never overlap. ``fetch``
answers an HTTP request; events go to every ready subscriber, asynchronously and at most
once, with a hop count that stops emit loops. A handler that raises fails its invocation
only, unless the worker asked for Escrin's ``error_policy=terminate``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, Protocol

from fulmen.clock import Clock
from fulmen.config import RunnerSettings
from fulmen.errors import RunnerError
from fulmen.runner import topics
from fulmen.runner.logbook import Logbook
from fulmen.runner.registry import Registry
from fulmen.runner.scheduler import Scheduler
from fulmen.runner.supervisor import REFUSED, WorkerProcess

__all__ = ["Host", "Triggers"]


class Host(Protocol):
    """What triggers need of the runner that holds the workers."""

    settings: RunnerSettings
    registry: Registry
    logbook: Logbook
    clock: Clock
    scheduler: Scheduler

    def get(self, ref: str) -> WorkerProcess: ...

    def find(self, worker_id: str) -> WorkerProcess | None: ...

    def workers(self) -> list[WorkerProcess]: ...

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...


class Triggers:
    def __init__(self, host: Host) -> None:
        self._host = host
        self._running: Counter[str] = Counter()

    async def run_now(self, ref: str, *, trigger_kind: str = "manual") -> int:
        """Start ``tasks`` now without waiting for it; returns the run id. ``not_found`` if
        the script has no ``tasks``."""
        process = self._usable(ref)
        if "tasks" not in process.handlers:
            raise RunnerError("the script has no tasks handler", code="no_handler")
        self._running[process.record.id] += 1
        try:
            run_id = await self._add_run(process.record.id, trigger_kind, None)
        except BaseException:
            self._running[process.record.id] -= 1
            raise
        self._host.spawn(self._finish_tasks(process, run_id, {"kind": trigger_kind}))
        return run_id

    async def fetch(self, ref: str, request: dict[str, Any]) -> dict[str, Any]:
        """Call the worker's ``fetch``; returns ``{status, headers, body}`` (body base64)."""
        process = self._usable(ref)
        if "fetch" not in process.handlers:
            raise RunnerError("the script has no fetch handler", code="no_handler")
        body = {"request": request, "trigger": {"kind": "http"}}
        try:
            result: dict[str, Any] = await process.invoke(
                "fetch", body, self._host.settings.fetch_timeout
            )
        except RunnerError as exc:
            if exc.code == "handler_raised" and process.record.error_policy == "terminate":
                self._host.spawn(self._terminate(process))
            raise
        return result

    def _usable(self, ref: str) -> WorkerProcess:
        process = self._host.get(ref)
        if process.state == REFUSED:
            raise RunnerError(
                f"worker {process.record.id} is refused: its stored record does not verify",
                code="refused",
            )
        return process

    async def publish(
        self, topic: str, payload: Any, *, source: str | None = None, hops: int = 0
    ) -> tuple[str, list[str]]:
        """Deliver an event to every subscribed, ready worker (asynchronously, at most once)."""
        event = {
            "id": str(uuid.uuid4()),
            "topic": topic,
            "payload": payload,
            "source": source,
            "published_at": self._host.clock.now().isoformat(),
        }
        ready = {w.record.id: w for w in self._host.workers() if w.state == "ready"}
        targets = topics.subscribers(topic, [(i, w.record.events) for i, w in ready.items()])
        for worker_id in targets:
            self._host.spawn(self._deliver(ready[worker_id], event, hops))
        return event["id"], targets

    def on_cron(self, worker_id: str, when: datetime) -> None:
        process = self._host.find(worker_id)
        if process is None:
            return
        self._host.spawn(
            self._host.registry.set_times(
                worker_id, last_run=None, next_run=self._next_ts(worker_id)
            )
        )
        if self._running[worker_id]:
            self._host.spawn(self._skip(process, when))
            return
        self._running[worker_id] += 1
        self._host.spawn(self._cron_run(process, when))

    async def _cron_run(self, process: WorkerProcess, when: datetime) -> None:
        """Invoke at once and write the run's row meanwhile: the disk is not on the tick's path."""
        trigger = {
            "kind": "cron",
            "cron": process.record.schedule,
            "scheduled_time": when.isoformat(),
        }
        invocation = asyncio.ensure_future(self._invoke_tasks(process, trigger))
        try:
            run_id = await self._add_run(process.record.id, "cron", when.timestamp())
        except BaseException:
            invocation.cancel()
            self._running[process.record.id] -= 1
            raise
        await self._finish_tasks(process, run_id, trigger, invocation)

    async def _skip(self, process: WorkerProcess, when: datetime) -> None:
        now = self._host.clock.now().timestamp()
        await self._host.registry.add_run(
            process.record.id,
            "cron",
            started_at=now,
            ended_at=now,
            scheduled_at=when.timestamp(),
            outcome="skipped-overlap",
        )
        self._host.logbook.write(
            process.record.id,
            "runner",
            "cron fire skipped: tasks still running",
            event="skipped-overlap",
            scheduled_at=when.timestamp(),
        )

    async def _add_run(self, worker_id: str, trigger: str, scheduled_at: float | None) -> int:
        now = self._host.clock.now().timestamp()
        return await self._host.registry.add_run(
            worker_id, trigger, started_at=now, scheduled_at=scheduled_at
        )

    async def _finish_tasks(
        self,
        process: WorkerProcess,
        run_id: int,
        trigger: dict[str, Any],
        invocation: asyncio.Future[tuple[str, str | None]] | None = None,
    ) -> None:
        """Invoke ``tasks`` (unless already under way), then record how it went; the run's
        counter was taken by the caller and is given back here."""
        worker_id = process.record.id
        self._host.logbook.write(
            worker_id,
            "runner",
            f"tasks started ({trigger['kind']})",
            event="run_started",
            run_id=run_id,
        )
        try:
            outcome, error = await (invocation or self._invoke_tasks(process, trigger))
        finally:
            self._running[worker_id] -= 1
        now = self._host.clock.now().timestamp()
        process.last_run = now
        if error is not None:  # it may quote the config: masked before it is stored
            error = self._host.logbook.scrub(worker_id, error)
        await self._host.registry.finish_run(run_id, ended_at=now, outcome=outcome, error=error)
        await self._host.registry.set_times(
            worker_id, last_run=now, next_run=self._next_ts(worker_id)
        )
        line = f"tasks ended: {outcome}" + (f" ({error})" if error else "")
        self._host.logbook.write(
            worker_id, "runner", line, event="run_ended", run_id=run_id, outcome=outcome
        )
        if outcome == "handler_raised" and process.record.error_policy == "terminate":
            await self._terminate(process)

    async def _invoke_tasks(
        self, process: WorkerProcess, trigger: dict[str, Any]
    ) -> tuple[str, str | None]:
        try:
            await process.invoke("tasks", {"trigger": trigger}, self._host.settings.tasks_timeout)
        except RunnerError as exc:
            return exc.code, exc.message
        return "ok", None

    async def _deliver(self, process: WorkerProcess, event: dict[str, Any], hops: int) -> None:
        trigger = {"kind": "event", "event_id": event["id"], "topic": event["topic"], "hops": hops}
        try:
            await process.invoke(
                "event", {"event": event, "trigger": trigger}, self._host.settings.event_timeout
            )
        except RunnerError as exc:
            self._host.logbook.write(
                process.record.id,
                "runner",
                f"event {event['id']} failed: {exc.message}",
                event="event_failed",
                outcome=exc.code,
            )
            if exc.code == "handler_raised" and process.record.error_policy == "terminate":
                await self._terminate(process)

    async def worker_emit(self, topic: str, payload: Any, source: str, hops: int) -> list[str]:
        return (await self.publish(topic, payload, source=source, hops=hops))[1]

    async def _terminate(self, process: WorkerProcess) -> None:
        """``error_policy=terminate``: a raising handler stops the worker, as Escrin did."""
        self._host.scheduler.remove(process.record.id)
        await process.stop()
        self._host.logbook.write(
            process.record.id, "runner", "stopped: a handler raised (terminate)"
        )

    def _next_ts(self, worker_id: str) -> float | None:
        when = self._host.scheduler.next_run(worker_id)
        return when.timestamp() if when else None
