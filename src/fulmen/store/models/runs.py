"""Runs, steps, their events and log lines: events.py and reads.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from fulmen.lifecycle import RunState, StepState
from fulmen.plan import Options
from fulmen.reasons import ExitReason
from fulmen.store.models.common import JSONValue
from fulmen.store.models.keychains import KeychainChoice
from fulmen.store.models.queue import Priority

__all__ = [
    "LOG_LEVELS",
    "LogEntry",
    "LogLine",
    "Run",
    "RunCompletion",
    "RunDetail",
    "RunFilter",
    "RunReport",
    "RunStart",
    "Step",
    "StepCompletion",
    "StepStart",
]

#: Spec §5.9: the levels a log line may have.
LOG_LEVELS = frozenset({"success", "always", "info", "warn", "error", "debug"})


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    work_order_id: str
    workflow_id: str
    project_id: str
    snapshot_id: str
    dataclip_id: str | None
    starting_node_id: str
    state: RunState
    queue: str
    priority: Priority
    options: Options
    worker_name: str | None
    error_type: str | None
    error_message: str | None
    final_dataclip_id: str | None
    inserted_at: datetime
    claimed_at: datetime | None
    joined_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    #: 1, or n + 1 for the automatic retry of attempt n (issue 8).
    attempt: int = 1
    #: The run this one retries automatically (same work order).
    retry_of: str | None = None
    #: The run this one reruns by hand, from ``starting_node_id`` (same work order).
    rerun_of: str | None = None
    #: Not claimed before this time (a retry waiting for its backoff).
    not_before: datetime | None = None
    #: When a cancel was asked for while a worker had the run.
    cancel_requested_at: datetime | None = None
    #: The workflow version (``lock_version``) of the snapshot the run runs.
    snapshot_version: int | None = None
    #: The job languages the run needs: only a worker that runs them all claims it.
    languages: tuple[str, ...] = ("python",)


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    run_id: str
    job_id: str
    input_dataclip_id: str | None
    output_dataclip_id: str | None
    state: StepState
    error_type: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: Run
    steps: tuple[Step, ...]
    #: What each keychain its jobs name chose for it when it was made (store/keychains.py).
    keychains: tuple[KeychainChoice, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing shows; fields left ``None`` do not filter."""

    project_id: str | None = None
    #: Only the runs of these projects (a caller's, issue 18).
    project_ids: frozenset[str] | None = None
    workflow_id: str | None = None
    work_order_id: str | None = None
    states: frozenset[RunState] | None = None
    #: Inserted at or after this time.
    inserted_from: datetime | None = None
    #: Inserted before this time.
    inserted_until: datetime | None = None
    #: Text that the run's log lines or dataclips contain (case-insensitive for ASCII). A
    #: listing with text searches a bounded window of runs per page (reads.SEARCH_WINDOW),
    #: so its pages may hold fewer items than asked for and still have a next cursor.
    text: str | None = None
    #: The projects in whose dataclips ``text`` is looked for (where the caller may read
    #: bodies); the others' runs match by their log lines only. ``None``: every project's.
    body_projects: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RunStart:
    """A ``run:start`` (spec §5.6), as one report of a frame (``Store.record_frame``)."""

    #: The worker's timestamp; ``None``: now.
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepStart:
    step_id: str
    job_id: str
    input_dataclip_id: str | None = None
    #: The worker's timestamp; ``None``: now.
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepCompletion:
    """A ``step:complete`` (spec §5.8). The output comes in one of three forms:

    * ``output_dataclip_id`` and ``output``: the output is stored as a ``step_result``;
    * ``output_dataclip_id`` alone: the run does not save dataclips; a wiped dataclip row
      keeps the id;
    * neither: the output was withheld (``DATACLIP_TOO_LARGE``).
    """

    step_id: str
    reason: ExitReason
    output_dataclip_id: str | None = None
    #: The step's output state; ``None`` means "not sent".
    output: JSONValue = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunCompletion:
    reason: ExitReason
    #: A stored dataclip (the single leaf's output, spec §5.10), if any.
    final_dataclip_id: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One ``run:log`` line, its message already joined into text (spec §5.9)."""

    message: str
    timestamp: datetime
    source: str = "JOB"
    level: str = "info"
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: str
    run_id: str
    step_id: str | None
    source: str
    level: str
    message: str
    timestamp: datetime


#: A report that changes a run's or a step's state, as ``Store.record_frame`` takes it.
RunReport: TypeAlias = "RunStart | StepStart | StepCompletion | RunCompletion"
