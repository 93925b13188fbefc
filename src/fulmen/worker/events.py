"""One run's runtime events turned into Lightning's ``run:<id>`` events, in the order §5.11
requires. Pure: ids and the clock are injected, so the whole mapping is tested with plain data.

The order a server sees, and where each part comes from::

    run:log RTE "Memory limit: …mb", "Timeout: …s"      preamble(), before run:start
    run:start, run:log RTE "Payload limit: …mb",         at WorkflowStart (or just before the
      run:log VER version banner                         first other event, so that a run
                                                         that fails to compile has started)
    per step: step:start → run:log* → step:complete     StepStart, LogLine, StepComplete
    run:log R/T "Run complete with status: …" [+ error]  the execution's status lines
    run:complete                                        WorkflowComplete

What the worker adds to the runtime's view (§6.5): it mints each step's output dataclip id,
remembers which job gets which dataclip as input (the plan's input dataclip for the first
job(s), then each step's output for the jobs it flows to), and withholds an output over the
payload limit (``output_dataclip_error: DATACLIP_TOO_LARGE`` and a log line, the run carrying
on with the real state, §7.2) or every output body when the plan says ``output_dataclips:
false``. Credentials never reach this module's output: the runtime has already scrubbed logs
and removed ``configuration`` from output states.

Lines the worker writes itself carry a timestamp 10 ms in the past, as ws-worker's do, so that
they sort before what they describe (§5.11).
"""

from __future__ import annotations

import functools
import platform
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

import orjson

import fulmen
from fulmen.contract import (
    JSON,
    Event,
    LogLevel,
    Mem,
    RunComplete,
    RunLog,
    RunStart,
    StepComplete,
    StepStart,
    format_timestamp,
)
from fulmen.contract import LogLine as WireLogLine
from fulmen.execution import aborted_step
from fulmen.plan import JAVASCRIPT, Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime import events as rt

__all__ = [
    "DATACLIP_TOO_LARGE",
    "Message",
    "RunEvents",
    "RunLimits",
    "event_of",
    "version_banner",
    "versions_for",
]

DATACLIP_TOO_LARGE: Final = "DATACLIP_TOO_LARGE"
TOO_LARGE_NOTE: Final = "Dataclip exceeds payload limit: output will not be sent back to the app."
REDACTED: Final = "[REDACTED]"
_SELF_LINE_LEAD_US: Final = 10_000
_LEVELS: Final = frozenset(level.value for level in LogLevel)

Message: TypeAlias = RunStart | StepStart | StepComplete | RunLog | RunComplete
"""An event the worker pushes on ``run:<id>``; :func:`event_of` names it."""

_EVENTS: Final[Mapping[type[Message], Event]] = {
    RunStart: Event.RUN_START,
    StepStart: Event.STEP_START,
    StepComplete: Event.STEP_COMPLETE,
    RunLog: Event.RUN_LOG,
    RunComplete: Event.RUN_COMPLETE,
}


def event_of(message: Message) -> Event:
    return _EVENTS[type(message)]


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The limits a run is held to: the plan's options, else the worker's defaults (§7.2)."""

    timeout_ms: int
    memory_mb: int
    payload_mb: float
    output_dataclips: bool = True

    @property
    def payload_bytes(self) -> int:
        """MiB, as ws-worker's engine counts them (``limit_mb * 1024 * 1024``)."""
        return int(self.payload_mb * 1024 * 1024)


def versions_for(
    plan: Plan,
    runtimes: Mapping[str, str] | None = None,
    packages: Mapping[str, str] | None = None,
) -> dict[str, str | tuple[str, ...]]:
    """``run:start``'s ``versions``: the worker, Python, what runs the JavaScript jobs when
    there are some (``runtimes``: ``node`` and OpenFn's ``runtime``, as ws-worker names
    them), each JavaScript adaptor's exact version, and what runs the Python jobs
    (``packages``: each package at the version installed for the run,
    ``execution.python_versions``). Lightning ignores it all."""
    versions: dict[str, str | tuple[str, ...]] = {**_OWN_VERSIONS, **(runtimes or {})}
    adaptors: dict[str, set[str]] = {}
    for job in plan.jobs:
        if job.runs_in == JAVASCRIPT:
            name, version = _split_adaptor(job.adaptor)
            adaptors.setdefault(name, set()).add(version)
    for name, version in (packages or {}).items():
        adaptors.setdefault(name, set()).add(version)
    for name in sorted(adaptors):
        versions[name] = tuple(sorted(adaptors[name]))
    return versions


_OWN_VERSIONS: Final[Mapping[str, str]] = {
    "worker": fulmen.__version__,
    "python": platform.python_version(),
}


def _split_adaptor(spec: str) -> tuple[str, str]:
    """``@openfn/language-http@6.5.1`` -> (``@openfn/language-http``, ``6.5.1``)."""
    name, at, version = spec.rpartition("@")
    if not at or not name:
        return spec, "installed"
    return name, version


def version_banner(versions: Mapping[str, str | tuple[str, ...]]) -> str:
    """The ``VER`` log line, laid out as ws-worker's (names padded to the longest + 4)."""
    return _banner(tuple(versions.items()))


@functools.lru_cache(maxsize=64)
def _banner(items: tuple[tuple[str, str | tuple[str, ...]], ...]) -> str:
    """The banner of a set of versions: nearly every run of a worker has the same one."""
    versions = dict(items)
    longest = max([len("worker"), *map(len, versions)])

    def line(name: str, value: str) -> str:
        return f"    ▸ {name.ljust(longest + 4)}{value}"

    lines = [
        "Versions:",
        line("python", str(versions.get("python", "unknown"))),
        line("worker", str(versions.get("worker", "unknown"))),
    ]
    for name in sorted(set(versions) - {"python", "worker"}):
        value = versions[name]
        lines.append(line(name, value if isinstance(value, str) else ", ".join(value)))
    return "\n".join(lines)


def _uuid() -> str:
    return str(uuid.uuid4())


def _now_us() -> int:
    return time.time_ns() // 1000


class RunEvents:
    """The mapping for one run; feed it every runtime event, in order.

    Args:
        plan: the run's plan (for the first jobs' input dataclip and the versions).
        limits: the limits the run is held to.
        new_id: mints dataclip ids (random UUIDs; tests pass a counter).
        now_us: the wall clock in microseconds.

    After ``run:complete`` has been produced, :attr:`exit` holds the run's exit reason.
    """

    def __init__(
        self,
        plan: Plan,
        limits: RunLimits,
        *,
        runtimes: Mapping[str, str] | None = None,
        new_id: Callable[[], str] = _uuid,
        now_us: Callable[[], int] = _now_us,
    ) -> None:
        self.run_id = plan.id
        self._plan = plan
        self._limits = limits
        self._runtimes = runtimes
        #: What runs the Python jobs, by package (``Execution.packages``): set before the
        #: run starts, once its packages are installed.
        self.packages: Mapping[str, str] = {}
        self._new_id = new_id
        self._now_us = now_us
        self._started = False
        self._active: rt.StepStart | None = None
        self._inputs: dict[str, str | None] = _first_inputs(plan)
        self._outputs: dict[str, str | None] = {}  # step id -> output id, None if withheld
        self.exit: ExitReason | None = None

    # -- the stream --------------------------------------------------------------------------

    def preamble(self) -> list[Message]:
        """The engine's notes that precede ``run:start`` (§5.11, §7.2)."""
        return [
            self._note("RTE", f"Memory limit: {self._limits.memory_mb}mb"),
            self._note("RTE", f"Timeout: {self._limits.timeout_ms / 1000:g}s"),
        ]

    def feed(self, event: rt.RuntimeEvent) -> list[Message]:
        """The Lightning events for one runtime event."""
        if isinstance(event, rt.WorkflowStart):
            return self._start(event.timestamp)
        out = [] if self._started else self._start(None)
        if isinstance(event, rt.LogLine):
            out.append(self._log(event))
        elif isinstance(event, rt.StepStart):
            out.append(self._step_start(event))
        elif isinstance(event, rt.StepComplete):
            out.extend(self._step_complete(event))
        else:
            out.append(self._run_complete(event))
        return out

    def abort(self, reason: ExitReason) -> list[Message]:
        """End a run the worker itself stopped (shutdown): the active step completes with the
        reason, then the status lines and ``run:complete`` of the error path (§7.1)."""
        out: list[Message] = []
        if self._active is not None:
            step = self._active
            out.extend(self._step_complete(aborted_step(step, reason)))
        return out + self.fail(reason)

    def fail(self, reason: ExitReason) -> list[Message]:
        """End a run that failed around the workflow (a dataclip or credential that did not
        load, a plan that did not decode): status lines, then ``run:complete`` with only the
        reason; no ``run:start`` if it had not started (§5.4, §5.5)."""
        self.exit = reason
        return [*self._status_lines(reason), RunComplete(reason)]

    # -- pieces ------------------------------------------------------------------------------

    def _start(self, timestamp: str | None) -> list[Message]:
        if self._started:
            return []
        self._started = True
        versions = versions_for(self._plan, self._runtimes, self.packages)
        return [
            RunStart(versions, timestamp or format_timestamp(self._now_us())),
            self._note("RTE", f"Payload limit: {self._limits.payload_mb:g}mb"),
            self._note("VER", version_banner(versions)),
        ]

    def _log(self, event: rt.LogLine) -> RunLog:
        level = event.level if event.level in _LEVELS else LogLevel.INFO.value
        line = WireLogLine(
            message=tuple(event.message) or ("",),
            source=(event.source or "R/T")[:8],
            level=LogLevel(level),
            timestamp=format_timestamp(int(event.timestamp)),
            step_id=event.step_id,
        )
        return RunLog(self.run_id, line)

    def _step_start(self, event: rt.StepStart) -> StepStart:
        self._active = event
        return StepStart(
            step_id=event.step_id,
            job_id=event.job_id,
            timestamp=event.timestamp,
            input_dataclip_id=self._inputs.get(event.job_id),
        )

    def _step_complete(self, event: rt.StepComplete) -> list[Message]:
        self._active = None
        too_large = (
            event.output_withheld is not None
            or len(event.output.encode()) > self._limits.payload_bytes
        )
        output_id = None if too_large else self._new_id()
        self._outputs[event.step_id] = output_id
        for job_id in event.next:  # §6.5: what each next job will get as input
            self._inputs[job_id] = output_id
        keep_body = not too_large and self._limits.output_dataclips
        complete = StepComplete(
            step_id=event.step_id,
            job_id=event.job_id,
            exit=event.exit,
            mem=None if event.mem_bytes is None else Mem(event.mem_bytes, event.mem_bytes),
            duration=event.duration_ms,
            timestamp=event.timestamp,
            output_dataclip_id=output_id,
            output_dataclip=event.output if keep_body else None,
            output_dataclip_error=DATACLIP_TOO_LARGE if too_large else None,
            webhook_response=_webhook_response(event.output),
        )
        if too_large:
            return [self._note("R/T", TOO_LARGE_NOTE), complete]
        return [complete]

    def _run_complete(self, event: rt.WorkflowComplete) -> RunComplete:
        reason = event.exit
        self.exit = reason
        if reason.reason not in (Reason.SUCCESS, Reason.FAIL):
            return RunComplete(reason)  # the error path carries only the reason (§5.10)
        leaf = self._outputs.get(event.leaves[0]) if len(event.leaves) == 1 else None
        final_state = self._final_state(event.final_state)
        if final_state is None and len(event.leaves) == 1 and leaf is None:
            # The single leaf's output was withheld in the sandbox: as redacted as any
            # other final state over the payload limit.
            final_state = {"data": REDACTED}
        return RunComplete(
            reason,
            timestamp=event.timestamp or format_timestamp(self._now_us()),
            final_state=final_state,
            final_dataclip_id=leaf,
        )

    def _final_state(self, text: str | None) -> JSON:
        """The final state, with ``data`` redacted when over the payload limit, as ws-worker's
        engine does (``ensure-payload-size``)."""
        if text is None:
            return None
        state: JSON = orjson.loads(text)
        if len(text.encode()) <= self._limits.payload_bytes:
            return state
        redacted: JSON = {**state, "data": REDACTED} if isinstance(state, dict) else {}
        if len(orjson.dumps(redacted)) > self._limits.payload_bytes:
            redacted = {"data": REDACTED}
        return redacted

    def _status_lines(self, reason: ExitReason) -> list[Message]:
        """What ws-worker logs before ``run:complete`` (§7.3)."""
        lines: list[Message] = [self._note("R/T", f"Run complete with status: {reason.reason}")]
        if not reason.ok:
            detail = f"{reason.error_type}: {reason.error_message or 'unknown'}"
            lines.append(self._note("R/T", detail))
        return lines

    def _note(self, source: str, text: str) -> RunLog:
        """A line the worker writes itself, dated 10 ms back (§5.11)."""
        stamp = format_timestamp(self._now_us() - _SELF_LINE_LEAD_US)
        return RunLog(self.run_id, WireLogLine((text,), source, LogLevel.INFO, stamp))


def _first_inputs(plan: Plan) -> dict[str, str | None]:
    """The jobs that receive the plan's input dataclip: the start node if it is a job, else
    every job its trigger's enabled edges lead to (§6.2)."""
    if plan.dataclip_id is None:
        return {}
    if plan.job(plan.start) is not None:
        return {plan.start: plan.dataclip_id}
    return {e.target_job_id: plan.dataclip_id for e in plan.edges_from(plan.start) if e.enabled}


def _webhook_response(output: str) -> dict[str, JSON] | None:
    """``state.webhookResponse``, forwarded so the server need not parse the dataclip
    (§10.1); the output is only parsed when it can hold one."""
    if '"webhookResponse"' not in output:
        return None
    state = orjson.loads(output)
    value = state.get("webhookResponse") if isinstance(state, dict) else None
    return value if isinstance(value, dict) else None
