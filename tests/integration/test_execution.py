"""A workflow run in a real sandboxed child: the event stream always ends properly."""

from __future__ import annotations

import asyncio
from typing import Any

from fulmen.execution import Defaults, RunRequest, start, start_zygote
from fulmen.plan import Plan
from fulmen.runtime.events import (
    LogLine,
    RuntimeEvent,
    StepComplete,
    StepStart,
    WorkflowComplete,
    WorkflowStart,
)


def plan(*bodies: str, **options: Any) -> Plan:
    jobs = [{"id": f"j{i}", "body": body} for i, body in enumerate(bodies)]
    edges = [
        {"id": f"e{i}", "source_job_id": f"j{i}", "target_job_id": f"j{i + 1}"}
        for i in range(len(bodies) - 1)
    ]
    return Plan.from_wire({"id": "r", "jobs": jobs, "edges": edges, "options": options})


def execute(request: RunRequest, cancel_on_step: int | None = None) -> list[RuntimeEvent]:
    async def main() -> list[RuntimeEvent]:
        cancel_at = cancel_on_step
        async with await start_zygote() as zygote, asyncio.timeout(30):
            execution = await start(zygote, request, Defaults())
            events: list[RuntimeEvent] = []
            async for event in execution:
                events.append(event)
                started = [e for e in events if isinstance(e, StepStart)]
                if cancel_at is not None and len(started) == cancel_at:
                    execution.cancel()
                    cancel_at = None
            return events

    return asyncio.run(main())


def kinds(events: list[RuntimeEvent]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, LogLine)]


def test_a_child_that_dies_mid_step_still_completes_the_step_and_the_run() -> None:
    events = execute(RunRequest(plan("fn(lambda s: s)", "import os\nfn(lambda s: os._exit(7))")))
    assert kinds(events) == [
        "WorkflowStart",
        "StepStart",
        "StepComplete",
        "StepStart",
        "StepComplete",
        "WorkflowComplete",
    ]
    aborted = next(e for e in reversed(events) if isinstance(e, StepComplete))
    assert (aborted.job_id, aborted.reason, aborted.error_type) == ("j1", "crash", "ExitError")
    assert aborted.output == "{}" and aborted.timestamp is None
    complete = events[-1]
    assert isinstance(complete, WorkflowComplete)
    assert complete.exit.error_message == "Process exited with code: 7"


def test_status_lines_come_just_before_the_end() -> None:
    events = execute(RunRequest(plan("fn(lambda s: 1/0)")))
    lines = [e.message[0] for e in events[-3:-1] if isinstance(e, LogLine)]
    assert lines == ["Run complete with status: fail", "ZeroDivisionError: division by zero"]
    assert isinstance(events[0], WorkflowStart)


def test_cancel_ends_the_child_and_the_run_with_reason_cancel() -> None:
    body = "import time\nfn(lambda s: time.sleep(30))"
    events = execute(RunRequest(plan(body)), cancel_on_step=1)
    step = next(e for e in events if isinstance(e, StepComplete))
    complete = events[-1]
    assert isinstance(complete, WorkflowComplete)
    assert (step.reason, complete.reason, complete.error_type) == (
        "cancel",
        "cancel",
        "CancelError",
    )


def test_a_credential_quoted_in_a_crash_message_is_masked() -> None:
    # KeyboardInterrupt is no Exception: it escapes the runtime and the child reports it.
    body = "@fn\ndef die(state):\n    raise KeyboardInterrupt(state['configuration']['token'])\n"
    request = RunRequest(
        Plan.from_wire({"id": "r", "jobs": [{"id": "a", "body": body, "credential_id": "c"}]}),
        credentials={"c": {"token": "tok-very-secret"}},
    )
    events = execute(request)
    complete = events[-1]
    assert isinstance(complete, WorkflowComplete)
    assert (complete.reason, complete.error_type) == ("crash", "ExitError")
    assert "KeyboardInterrupt: ***" in (complete.error_message or "")
    assert "tok-very-secret" not in repr(events)
