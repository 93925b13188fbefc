"""Run one workflow in a sandboxed child and get back a complete, well-ordered event stream.

The runtime inside the child reports what it did; this module makes sure the stream always
ends properly even when the child cannot say so itself. A child killed at the run timeout, one
that ran out of memory, and one that died for any other reason all end with a ``step-complete``
for the step that was active (output ``{}``, no timestamp, as §7.1 describes for the error path)
and a ``workflow-complete`` with the reason the spec names. Both the local CLI and the worker
consume this stream, so they can never disagree on how a run ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fulmen.config import SandboxSettings
from fulmen.errors import ContractError
from fulmen.plan import Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.runtime.entry import ENTRY, PRELOAD, WARM_UP
from fulmen.runtime.events import (
    LogLine,
    RuntimeEvent,
    StepComplete,
    StepStart,
    WorkflowComplete,
    decode,
    timestamp_us,
)
from fulmen.sandbox import ChildExit, Limits, RunHandle, Zygote
from fulmen.scrub import Scrubber

__all__ = [
    "Defaults",
    "Execution",
    "RunRequest",
    "aborted_step",
    "exit_reason_for",
    "limits_for",
    "start",
    "start_zygote",
]


@dataclass(frozen=True, slots=True)
class Defaults:
    """Limits used when the plan's options do not set them (the JS worker's defaults, §10.5)."""

    run_timeout_ms: int = 300_000
    run_memory_limit_mb: int = 500


@dataclass(frozen=True, slots=True)
class RunRequest:
    plan: Plan
    input: Mapping[str, Any] = field(default_factory=dict)
    #: Credential bodies by credential id; they go to the child only, never the zygote.
    credentials: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def credential_bodies(self) -> list[Mapping[str, Any]]:
        inline = [job.credential for job in self.plan.jobs if job.credential is not None]
        return [*self.credentials.values(), *inline]

    def payload(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_wire(),
            "input": dict(self.input),
            "credentials": {k: dict(v) for k, v in self.credentials.items()},
        }


def limits_for(plan: Plan, defaults: Defaults) -> Limits:
    options = plan.options
    timeout_ms = options.run_timeout_ms or defaults.run_timeout_ms
    return Limits(
        timeout_s=timeout_ms / 1000,
        memory_mb=options.run_memory_limit_mb or defaults.run_memory_limit_mb,
        cpu_s=None,
    )


def exit_reason_for(exit: ChildExit, timeout_ms: int, scrubber: Scrubber) -> ExitReason:
    """How a run ends when its child ended without completing it (§7.1, §7.2).

    The child's own exit message can quote job code's exception, so it is scrubbed.
    """
    if exit.kind == "killed":
        return ExitReason(Reason.CANCEL, "CancelError", "The run was cancelled")
    if exit.kind == "timeout":
        return ExitReason(
            Reason.KILL, "TimeoutError", f"Workflow failed to return within {timeout_ms}ms"
        )
    if exit.kind == "oom":
        return ExitReason(Reason.KILL, "OOMError", "Run exceeded maximum memory usage")
    return ExitReason(Reason.CRASH, "ExitError", scrubber.text(exit.message))


class Execution:
    """One run in progress: iterate it for events; ``cancel()`` ends the child at once."""

    def __init__(self, handle: RunHandle, timeout_ms: int, scrubber: Scrubber) -> None:
        self._handle = handle
        self._timeout_ms = timeout_ms
        self._scrubber = scrubber
        self.exit: ChildExit | None = None

    def cancel(self) -> None:
        self._handle.kill()

    async def __aiter__(self) -> AsyncIterator[RuntimeEvent]:
        active: StepStart | None = None
        complete: WorkflowComplete | None = None
        async for raw in self._handle:
            try:
                event = decode(raw)
            except ContractError:
                self._handle.kill()  # a child that speaks nonsense is not trusted further
                break
            if isinstance(event, WorkflowComplete):
                complete = event  # held back: the status lines go first (§5.11)
                continue
            if isinstance(event, StepStart):
                active = event
            elif isinstance(event, StepComplete):
                active = None
            yield event
        self.exit = await self._handle.wait()
        if complete is None:
            reason = exit_reason_for(self.exit, self._timeout_ms, self._scrubber)
            if active is not None:
                yield aborted_step(active, reason)
            complete = WorkflowComplete(
                reason.reason.value, reason.error_type, reason.error_message, None, []
            )
        for line in _status_lines(complete.exit):
            yield line
        yield complete


async def start_zygote(sandbox: SandboxSettings | None = None, **options: Any) -> Zygote:
    """The zygote for workflow runs: the runtime preloaded and warmed up, isolated as
    ``sandbox`` asks (see ``Zygote.start``; ``options`` go to it and win).

    Raises:
        SandboxError: the zygote did not start, or gives less than ``sandbox.isolation``
            (code ``isolation_unavailable``, naming what is missing).
    """
    sandbox = sandbox or SandboxSettings()
    chosen: dict[str, Any] = {
        "minimum_level": sandbox.isolation,
        "network": sandbox.network,
        "allow": sandbox.allow_net,
    }
    return await Zygote.start(preload=PRELOAD, warm_up=WARM_UP, **{**chosen, **options})


async def start(zygote: Zygote, request: RunRequest, defaults: Defaults) -> Execution:
    """Start the run in a fresh child; the payload goes straight to that child."""
    limits = limits_for(request.plan, defaults)
    handle = await zygote.run(ENTRY, request.payload(), limits)
    timeout_ms = request.plan.options.run_timeout_ms or defaults.run_timeout_ms
    return Execution(handle, timeout_ms, Scrubber(request.credential_bodies()))


def aborted_step(step: StepStart, reason: ExitReason) -> StepComplete:
    """The step-complete of a step cut short (§7.1 error path): output ``{}``, no timestamp."""
    return StepComplete(
        step_id=step.step_id,
        job_id=step.job_id,
        reason=reason.reason.value,
        error_type=reason.error_type,
        error_message=reason.error_message,
        output="{}",
        next=[],
    )


def _status_lines(reason: ExitReason) -> list[LogLine]:
    """``Run complete with status: …`` and the error line, as the JS worker logs them (§7.3)."""
    now = timestamp_us()
    lines = [LogLine("info", "R/T", [f"Run complete with status: {reason.reason.value}"], now)]
    if not reason.ok:
        detail = f"{reason.error_type}: {reason.error_message or 'unknown'}"
        lines.append(LogLine("info", "R/T", [detail], now))
    return lines
