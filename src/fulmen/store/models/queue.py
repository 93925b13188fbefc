"""Queues, work orders, enqueuing and claiming: queue.py, newruns.py and reruns.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from fulmen.lifecycle import RunState
from fulmen.plan import Options
from fulmen.store.models.dataclips import NewDataclip

__all__ = [
    "DEFAULT_QUEUES",
    "ClaimedRun",
    "EnqueueRequest",
    "Enqueued",
    "LostRun",
    "Priority",
    "Queue",
    "RerunRequest",
    "UnjoinedClaim",
    "WorkOrder",
]


class Queue(StrEnum):
    """The queues Lightning knows (spec §4.4). Any ``[A-Za-z0-9_]+`` name may be used."""

    DEFAULT = "default"
    #: Runs of webhooks that reply after completion.
    FAST_LANE = "fast_lane"
    #: Manual runs and retries.
    MANUAL = "manual"


#: What a claim without ``queues`` takes (spec §4.2): manual runs first, then any other.
DEFAULT_QUEUES: tuple[str, ...] = ("manual", "*")


class Priority(IntEnum):
    """Lower is claimed first: manual and webhook runs before cron runs (spec §4.4)."""

    IMMEDIATE = 0
    NORMAL = 1


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """A run to make: its input, work order and run are written in one transaction."""

    workflow_id: str
    #: A new input dataclip (a webhook body, a manual input)…
    input: NewDataclip | None = None
    #: …or an existing one of the same project; neither: the run starts from ``{}``.
    input_dataclip_id: str | None = None
    trigger_id: str | None = None
    #: A trigger or job of the workflow; ``None``: ``trigger_id``, else the first trigger,
    #: else the first job.
    starting_node_id: str | None = None
    queue: str = Queue.DEFAULT
    priority: Priority = Priority.IMMEDIATE
    options: Options = field(default_factory=Options)
    #: An existing work order of the same workflow (reruns and retries), else a new one.
    work_order_id: str | None = None
    #: ``None``: the store mints one.
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class RerunRequest:
    """Run a work order again, as a new run in it (issue 8).

    * ``step_id``: from that step: its stored input is the new run's input, its job the
      starting node (the step's run names the work order);
    * ``work_order_id`` and ``job_id``: from the step of that job in the work order's latest
      run that has one;
    * ``work_order_id`` alone: from the start, with the work order's own input.

    The new run runs the workflow's current version (as Lightning's retries do). An input
    that was wiped cannot be run again: ConflictError ``dataclip_wiped``.
    """

    work_order_id: str | None = None
    job_id: str | None = None
    step_id: str | None = None
    queue: str = Queue.MANUAL
    priority: Priority = Priority.IMMEDIATE
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class Enqueued:
    work_order_id: str
    run_id: str
    dataclip_id: str | None
    #: Whose run it is (the audit trail's record of a run started by hand names them).
    workflow_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkOrder:
    id: str
    workflow_id: str
    trigger_id: str | None
    dataclip_id: str | None
    inserted_at: datetime
    #: The state of its latest run (issue 8).
    state: RunState | None


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """What the claim reply needs: the id, the timeout that bounds the run token, and the
    input a claim that fetches hands over."""

    id: str
    workflow_id: str
    project_id: str
    queue: str
    priority: Priority
    run_timeout_ms: int | None
    claimed_at: datetime
    dataclip_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnjoinedClaim:
    """A claim whose run channel was never joined in time, as it was before its rollback."""

    run_id: str
    worker_name: str | None
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class LostRun:
    id: str
    #: ``LostAfterClaim`` or ``LostAfterStart`` (spec §7.5).
    error_type: str
