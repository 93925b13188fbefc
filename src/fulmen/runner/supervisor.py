"""Keeps one smart worker's process alive: start, watch, restart with backoff, give up.

A worker's process is a duplex sandbox run of ``fulmen.runner.host:serve`` (see ``host.py``
for why one long-lived process per worker). Its states (spec runner.md §3.5)::

    starting ──ready──> ready ──process ended──> crashed ──backoff──> starting
        │                                            │
        └──load failed (at create: refused) ─────────┴──N crashes in the window──> failed
    any ──stop()──> stopped

    (stored record does not verify, at start) ──> refused: never started (``service.py``)

A crash is any end of the process the runner did not ask for: an exit, a signal, running
out of memory, or a kill after a handler timed out. The delay before each restart comes from
``fulmen.backoff.delays`` (1, 2, 4 … 300 s), indexed by the number of crashes within the
window, so a worker that has been stable for a while starts again from the shortest delay.
After ``crash_limit`` crashes within ``crash_window`` seconds the worker is ``failed`` and
stays so until restarted by hand. A handler that raises is not a crash: that invocation
fails, the process lives on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fulmen import backoff
from fulmen.clock import Clock
from fulmen.errors import RunnerError, SandboxError
from fulmen.runner.channel import WorkerChannel
from fulmen.runner.logbook import Logbook
from fulmen.runner.registry import WorkerRecord
from fulmen.sandbox import ChildExit, Limits, Zygote

__all__ = ["ENTRY", "REFUSED", "SupervisorSettings", "WorkerProcess", "restart_delay"]

ENTRY: Final = "fulmen.runner.host:serve"
REFUSED: Final = "refused"
"""A stored worker whose record does not verify: listed, never started."""

Serve = Callable[[WorkerRecord, str, dict[str, Any]], Awaitable[Any]]
OnState = Callable[[str, str], None]


@dataclass(frozen=True)
class SupervisorSettings:
    load_timeout: float = 10.0
    backoff_min: float = 1.0
    backoff_max: float = 300.0
    crash_limit: int = 5
    crash_window: float = 600.0
    memory_mb: int = 512
    cancel_grace: float = 5.0


def restart_delay(crashes: int, settings: SupervisorSettings) -> float:
    """The delay before restarting after the ``crashes``-th crash in the window (1-based)."""
    schedule = backoff.delays(settings.backoff_min, settings.backoff_max)
    return next(itertools.islice(schedule, max(0, crashes - 1), None))


class WorkerProcess:
    """One worker's process, restarted as needed. :meth:`start`, then :meth:`stop`.

    *Resource handling*: owns its current process and the supervising task; :meth:`stop`
    ends both. *Error handling*: nothing the process does raises out of the supervisor;
    :meth:`start` and :meth:`invoke` raise :class:`RunnerError` to their caller.
    """

    def __init__(
        self,
        record: WorkerRecord,
        *,
        zygote: Zygote,
        serve: Serve,
        logbook: Logbook,
        clock: Clock,
        settings: SupervisorSettings,
        on_state: OnState,
    ) -> None:
        self.record = record
        self._zygote = zygote
        self._serve = serve
        self._logbook = logbook
        self._clock = clock
        self._settings = settings
        self._on_state = on_state
        self._channel: WorkerChannel | None = None
        self._pump: asyncio.Task[ChildExit] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._crashes: list[float] = []
        self._stopping = False
        self.state = "starting"
        self.handlers: frozenset[str] = frozenset()
        self.last_run = record.last_run
        """When ``tasks`` last ended (unix seconds), kept current by the triggers."""

    @property
    def pid(self) -> int | None:
        return self._channel.pid if self._channel is not None else None

    async def start(self, *, tolerate_failure: bool = False) -> None:
        """Start the process and wait until the script has loaded.

        Raises:
            RunnerError: ``script_load_failed`` with the script's error (unless
                ``tolerate_failure``: then the failure counts as a crash and is retried).
        """
        try:
            await self._spawn()
        except RunnerError as exc:
            if not tolerate_failure:
                raise
            self._log(f"start failed: {exc.message}")
        self._watch = asyncio.get_running_loop().create_task(self._supervise())

    async def invoke(self, kind: str, body: dict[str, Any], timeout: float) -> Any:
        """Call a handler (see :meth:`WorkerChannel.invoke`); ``not_ready`` unless ready."""
        channel = self._channel
        if self.state != "ready" or channel is None:
            raise RunnerError(f"worker {self.record.id} is {self.state}", code="not_ready")
        return await channel.invoke(kind, body, timeout, self._settings.cancel_grace)

    async def stop(self) -> None:
        """End the process (asking first, killing after a grace period) and stop watching."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        channel, pump = self._channel, self._pump
        if channel is not None and pump is not None:
            channel.close()
            try:
                async with asyncio.timeout(2):
                    await asyncio.shield(pump)
            except TimeoutError:
                channel.kill("stopped")
                await pump
        self._set_state("stopped")

    # -- internals -------------------------------------------------------------------------

    async def _spawn(self) -> None:
        self._set_state("starting")
        try:
            handle = await self._zygote.run(ENTRY, self._payload(), self._limits(), duplex=True)
        except SandboxError as exc:
            raise RunnerError(f"could not start a process: {exc}", code="sandbox_error") from exc
        channel = WorkerChannel(handle, self._serve_own, self._on_output)
        pump = asyncio.get_running_loop().create_task(channel.pump())
        self._channel, self._pump = channel, pump
        try:
            async with asyncio.timeout(self._settings.load_timeout):
                ready = await channel.ready
        except TimeoutError:
            channel.kill("did not load in time")
            ready = {"error": {"message": f"not ready within {self._settings.load_timeout:g}s"}}
        if not ready.get("ok"):
            await pump
            self._channel = self._pump = None
            error = ready.get("error") or {}
            detail = f"{error.get('type', 'Error')}: {error.get('message', '')}".strip(": ")
            raise RunnerError(f"script failed to load: {detail}", code="script_load_failed")
        self.handlers = frozenset(ready.get("handlers", ()))
        self._set_state("ready")
        self._log(f"process {channel.pid} ready; handlers: {', '.join(sorted(self.handlers))}")

    async def _supervise(self) -> None:
        while not self._stopping:
            if self._pump is not None:
                # Shielded: cancelling the watch (stop) must not cancel the pump, which
                # stop() still waits on to see the process end.
                result = await asyncio.shield(self._pump)
                reason = self._channel.kill_reason if self._channel else None
                self._channel = self._pump = None
                if self._stopping:
                    return
                self._log_exit(result, reason)
            if not await self._back_off():
                return
            try:
                await self._spawn()
            except RunnerError as exc:
                self._log(exc.message)

    async def _back_off(self) -> bool:
        """Count a crash and wait out its delay; False once the worker has failed."""
        now = self._clock.now().timestamp()
        self._crashes = [t for t in self._crashes if now - t < self._settings.crash_window] + [now]
        if len(self._crashes) >= self._settings.crash_limit:
            self._set_state("failed")
            self._log(
                f"{len(self._crashes)} crashes within {self._settings.crash_window:g}s: failed"
            )
            return False
        delay = restart_delay(len(self._crashes), self._settings)
        self._set_state("crashed")
        self._log(f"restarting in {delay:g}s", event="restart_scheduled", delay=delay)
        await self._clock.sleep(delay)
        return not self._stopping

    def _log_exit(self, result: ChildExit, reason: str | None) -> None:
        detail = reason or f"{result.kind}: {result.message}"
        self._log(f"process ended: {detail}", event="crashed", kind=result.kind)
        for line in result.output.splitlines()[-20:]:
            self._logbook.write(self.record.id, "stderr", line)

    def _serve_own(self, op: str, args: dict[str, Any]) -> Awaitable[Any]:
        return self._serve(self.record, op, args)

    def _on_output(self, stream: str, line: str) -> None:
        self._logbook.write(self.record.id, stream, line)

    def _log(self, line: str, **extra: Any) -> None:
        self._logbook.write(self.record.id, "runner", line, **extra)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._on_state(self.record.id, state)

    def _payload(self) -> dict[str, Any]:
        r = self.record
        return {
            "worker_id": r.id,
            "name": r.name,
            "type": r.type,
            "script": r.script,
            "args": r.args,
        }

    def _limits(self) -> Limits:
        return Limits(memory_mb=self._settings.memory_mb, nofile=256, fsize_mb=64)
