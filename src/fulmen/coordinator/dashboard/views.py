"""What the dashboard's templates show, computed from the store's values: pure functions, no
I/O, so that each rule (which runs count as failed, how a duration reads, what of a dataclip
may be shown) is decided once and tested without a browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fulmen import python_requirements
from fulmen.errors import InputError
from fulmen.lifecycle import FINAL_RUN_STATES, RunState
from fulmen.plan import Job
from fulmen.store import Run, Step, Workflow

__all__ = [
    "BAD_STATES",
    "DATACLIP_SHOWN_BYTES",
    "RunRow",
    "TimelineStep",
    "duration",
    "job_names",
    "package_pins",
    "pretty_json",
    "run_row",
    "state_class",
    "timeline",
    "visible_dataclip",
]

#: Final states that mean the run did not do its work: shown red, and named in words too.
BAD_STATES: Final = frozenset(
    {RunState.FAILED, RunState.CRASHED, RunState.KILLED, RunState.EXCEPTION, RunState.LOST}
)
#: The most of a dataclip the run page prints; the API serves the whole of it.
DATACLIP_SHOWN_BYTES: Final = 200_000
#: Keys of a state that hold secrets: never shown (the worker removes them; this is the
#: belt to those braces, for dataclips stored by other means).
_SECRET_KEYS: Final = frozenset({"configuration"})


def state_class(state: str) -> str:
    """The CSS class of a run or step state: ``ok``, ``bad``, ``busy`` or ``idle``."""
    if state in ("success",):
        return "ok"
    if state in BAD_STATES or state in ("fail", "crash", "kill", "exception", "lost"):
        return "bad"
    if state in ("available", "cancelled", "cancel"):
        return "idle"
    return "busy"


def duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    """``"850 ms"``, ``"12.4 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``; ``""`` before the start.
    A run still going is measured up to ``now``."""
    if start is None:
        return ""
    seconds = max(((end or now) - start).total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


@dataclass(frozen=True, slots=True)
class RunRow:
    """One line of the runs list."""

    id: str
    short_id: str
    workflow: str
    workflow_id: str
    project_id: str
    work_order_id: str
    state: str
    css: str
    final: bool
    inserted_at: datetime
    duration: str
    reason: str


def run_row(run: Run, workflow_names: Mapping[str, str], now: datetime) -> RunRow:
    reason = ""
    if run.error_type or run.error_message:
        reason = ": ".join(part for part in (run.error_type, run.error_message) if part)
    return RunRow(
        id=run.id,
        short_id=run.id[:8],
        workflow=workflow_names.get(run.workflow_id, run.workflow_id[:8]),
        workflow_id=run.workflow_id,
        project_id=run.project_id,
        work_order_id=run.work_order_id,
        state=run.state.value,
        css=state_class(run.state.value),
        final=run.state in FINAL_RUN_STATES,
        inserted_at=run.inserted_at,
        duration=duration(run.started_at, run.finished_at, now),
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """A step on the run page: where its bar starts and how wide it is (percent of the run)."""

    step: Step
    job_name: str
    css: str
    duration: str
    reason: str
    left: float
    width: float


def timeline(
    steps: Iterable[Step],
    job_names: Mapping[str, str],
    run_start: datetime | None,
    run_end: datetime | None,
    now: datetime,
) -> list[TimelineStep]:
    """The steps in start order, each placed on the run's time axis (at least 0.5% wide, so
    that a 1 ms step is still a visible mark)."""
    ordered = sorted(steps, key=lambda s: s.started_at)
    origin = run_start or (ordered[0].started_at if ordered else now)
    last = max([run_end or now, *(s.finished_at or now for s in ordered)], default=now)
    total = max((last - origin).total_seconds(), 1e-6)
    out = []
    for step in ordered:
        begin = max((step.started_at - origin).total_seconds(), 0.0)
        length = max(((step.finished_at or now) - step.started_at).total_seconds(), 0.0)
        left = min(begin / total * 100, 99.5)
        reason = ": ".join(p for p in (step.error_type, step.error_message) if p)
        out.append(
            TimelineStep(
                step=step,
                job_name=job_names.get(step.job_id, step.job_id[:8]),
                css=state_class(step.state.value),
                duration=duration(step.started_at, step.finished_at, now),
                reason=reason,
                left=round(left, 2),
                width=round(min(max(length / total * 100, 0.5), 100 - left), 2),
            )
        )
    return out


def job_names(workflow: Workflow) -> dict[str, str]:
    """Names of the workflow's jobs and triggers by id (a trigger by its type)."""
    names = {job.id: job.name or job.id[:8] for job in workflow.jobs}
    names.update({t.id: f"{t.type.value} trigger" for t in workflow.triggers})
    return names


def visible_dataclip(body: Any) -> Any:
    """A dataclip's body without the state's secret keys (as the REST API serves it)."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in _SECRET_KEYS}
    return body


def pretty_json(value: Any, limit: int = DATACLIP_SHOWN_BYTES) -> tuple[str, bool]:
    """Indented JSON, cut at ``limit`` characters; and whether it was cut."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def package_pins(job: Job) -> list[str]:
    """A Python job's packages as its version pinned them, for people (``pandas 2.2.3``):
    its package adaptor first, then its requirements. Empty for a JavaScript job, and for a
    job of Fulmen's own or an installed adaptor with no requirements."""
    try:
        found = python_requirements.package_requirements(job)
    except InputError:
        return []  # saved before issue 16, by rules that no longer read it: shown as it is
    return [
        f"{r.name} {python_requirements.exact_version(r) or r.specifier or 'latest'}" for r in found
    ]
