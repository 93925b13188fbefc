"""The values the store takes and gives: frozen, typed, with no database types in them.

Workflows reuse the plan's ``Job`` and ``Edge`` (fulmen.plan), so that a stored workflow turns
into the plan a worker fetches without a second vocabulary; triggers carry more than a plan
needs (cron expression, webhook reply mode), so they have their own type here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Generic, TypeAlias, TypeVar

from fulmen.lifecycle import RunState, StepState
from fulmen.plan import Edge, Job, Options
from fulmen.reasons import ExitReason

__all__ = [
    "DEFAULT_QUEUES",
    "LOG_LEVELS",
    "ApiToken",
    "ClaimedRun",
    "CredentialInfo",
    "CronCursor",
    "CronTick",
    "CronTrigger",
    "Dataclip",
    "DataclipType",
    "EnqueueRequest",
    "Enqueued",
    "JSONValue",
    "LogEntry",
    "LogLine",
    "LostRun",
    "NewCredential",
    "NewDataclip",
    "NewWebhookAuthMethod",
    "Page",
    "Priority",
    "Project",
    "Queue",
    "RerunRequest",
    "RetentionBatch",
    "RetentionPolicy",
    "RetryPolicy",
    "Run",
    "RunCompletion",
    "RunDetail",
    "RunFilter",
    "Snapshot",
    "Step",
    "StepCompletion",
    "StepStart",
    "StoredWorkflow",
    "TriggerInfo",
    "TriggerType",
    "UnjoinedClaim",
    "WebhookAuthMethod",
    "WebhookAuthType",
    "WebhookReply",
    "WebhookSecret",
    "WorkOrder",
    "Workflow",
    "WorkflowTrigger",
]

#: A JSON document as Python values. Inputs may be any mappings and sequences; what the store
#: gives back is plain dicts and lists.
JSONValue: TypeAlias = (
    Mapping[str, "JSONValue"] | Sequence["JSONValue"] | str | int | float | bool | None
)

T = TypeVar("T")


class Queue(StrEnum):
    """The queues Lightning knows (spec §4.4). Any ``[A-Za-z0-9_]+`` name may be used."""

    DEFAULT = "default"
    #: Runs of webhooks that reply after completion.
    FAST_LANE = "fast_lane"
    #: Manual runs and retries.
    MANUAL = "manual"


#: What a claim without ``queues`` takes (spec §4.2): manual runs first, then any other.
DEFAULT_QUEUES: tuple[str, ...] = ("manual", "*")

#: Spec §5.9: the levels a log line may have.
LOG_LEVELS = frozenset({"success", "always", "info", "warn", "error", "debug"})


class Priority(IntEnum):
    """Lower is claimed first: manual and webhook runs before cron runs (spec §4.4)."""

    IMMEDIATE = 0
    NORMAL = 1


class DataclipType(StrEnum):
    HTTP_REQUEST = "http_request"
    STEP_RESULT = "step_result"
    SAVED_INPUT = "saved_input"
    GLOBAL = "global"


class TriggerType(StrEnum):
    WEBHOOK = "webhook"
    CRON = "cron"
    KAFKA = "kafka"


class WebhookReply(StrEnum):
    BEFORE_START = "before_start"
    AFTER_COMPLETION = "after_completion"


class CronCursor(StrEnum):
    """What each run of a cron trigger starts from (issue 8), so that incremental syncs
    carry on where the last one stopped. The first run, with nothing to go on, starts from
    ``{}``."""

    #: Always ``{}``.
    NONE = "none"
    #: The final state of the workflow's last successful run.
    LAST_RUN = "last_run"
    #: The last successful output of the trigger's ``cron_cursor_job_id``.
    JOB = "job"


class RetentionPolicy(StrEnum):
    """What a project keeps of its runs' data (Lightning's names)."""

    RETAIN_ALL = "retain_all"
    #: No input or output body outlives its use: bodies are wiped once the run (and its
    #: retries) have used them, and the worker is told not to send outputs at all
    #: (plan option ``output_dataclips=false``). Run and step metadata are kept.
    ERASE_ALL = "erase_all"


class WebhookAuthType(StrEnum):
    #: The ``x-api-key`` header carries the key.
    API = "api"
    #: ``Authorization: Basic`` carries a username and password.
    BASIC = "basic"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing. Pass ``next_cursor`` back for the next; ``None`` at the end."""

    items: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    #: Issue 8: runs of the project in flight at once; ``None`` is no limit.
    concurrency: int | None = None
    #: Days of run history kept (work orders, runs, steps, logs); ``None``: forever.
    history_retention_period: int | None = None
    #: Days dataclip bodies are kept, at most the history's; ``None``: as long as the history.
    dataclip_retention_period: int | None = None
    retention_policy: RetentionPolicy = RetentionPolicy.RETAIN_ALL
    #: Set by the store; ignored when creating or replacing.
    inserted_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WorkflowTrigger:
    id: str
    type: TriggerType = TriggerType.WEBHOOK
    enabled: bool = True
    cron_expression: str | None = None
    #: IANA time zone of a cron trigger; ``None`` is UTC.
    timezone: str | None = None
    webhook_reply: WebhookReply | None = None
    #: What a cron trigger's runs start from (issue 8).
    cron_cursor: CronCursor = CronCursor.NONE
    #: The job whose last successful output a ``job`` cursor reads.
    cron_cursor_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A workflow's automatic retries (issue 8): a run that ends ``crash``, ``kill`` or
    ``lost`` (and ``fail`` when ``on_fail``) is retried up to ``max_retries`` times, the
    n-th retry waiting ``backoff_ms * 2^(n-1)``, at most ``backoff_max_ms``
    (fulmen.store.retry_policy decides)."""

    max_retries: int = 0
    backoff_ms: int = 10_000
    backoff_max_ms: int = 600_000
    on_fail: bool = False


@dataclass(frozen=True, slots=True)
class Workflow:
    """A workflow as it is saved: always whole (its jobs, triggers and edges together)."""

    id: str
    project_id: str
    name: str
    jobs: tuple[Job, ...] = ()
    triggers: tuple[WorkflowTrigger, ...] = ()
    edges: tuple[Edge, ...] = ()
    #: Issue 8: runs of the workflow in flight at once; ``None`` is no limit.
    concurrency: int | None = None
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    workflow: Workflow
    #: Goes up by one on every save; pass it back as ``expected_version`` to replace.
    version: int
    #: The immutable snapshot of this version; runs enqueued now run it.
    snapshot_id: str
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    workflow_id: str
    version: int
    workflow: Workflow
    inserted_at: datetime


@dataclass(frozen=True, slots=True)
class TriggerInfo:
    trigger: WorkflowTrigger
    workflow_id: str
    project_id: str


@dataclass(frozen=True, slots=True)
class NewCredential:
    id: str
    project_id: str
    name: str
    #: The secret document (``state.configuration`` of the jobs using it).
    body: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential without its value: what listings show."""

    id: str
    project_id: str
    name: str
    inserted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewWebhookAuthMethod:
    """A webhook auth method to create: an API key (``None``: the store makes one, 32 random
    bytes as hex, as Lightning does) or a username and password."""

    id: str
    project_id: str
    name: str
    auth_type: WebhookAuthType
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WebhookAuthMethod:
    """A webhook auth method without its secret: what listings show. ``api_key`` is filled
    only in the answer to creating one (the one time it is shown)."""

    id: str
    project_id: str
    name: str
    auth_type: WebhookAuthType
    inserted_at: datetime
    updated_at: datetime
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """An attached method's opened secret: what checking a webhook request needs."""

    method_id: str
    auth_type: WebhookAuthType
    api_key: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class NewDataclip:
    type: DataclipType
    body: JSONValue
    #: Request metadata of an ``http_request`` dataclip (method, path, headers…).
    request: JSONValue = None
    #: ``None``: the store mints one.
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Dataclip:
    id: str
    project_id: str
    type: DataclipType
    #: ``None`` once wiped.
    body: JSONValue
    request: JSONValue
    wiped_at: datetime | None
    inserted_at: datetime

    def as_input(self) -> JSONValue:
        """The document a worker's ``fetch:dataclip`` gets (spec §5.5)."""
        if self.type is DataclipType.HTTP_REQUEST:
            return {"data": self.body, "request": self.request}
        return self.body


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
    """What the claim reply needs: the id, and the timeout that bounds the run token."""

    id: str
    workflow_id: str
    project_id: str
    queue: str
    priority: Priority
    run_timeout_ms: int | None
    claimed_at: datetime


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


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing shows; fields left ``None`` do not filter."""

    project_id: str | None = None
    workflow_id: str | None = None
    work_order_id: str | None = None
    states: frozenset[RunState] | None = None
    #: Inserted at or after this time.
    inserted_from: datetime | None = None
    #: Inserted before this time.
    inserted_until: datetime | None = None


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


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """An enabled cron trigger and its cursor: the tick it fires next, and the schedule that
    tick was computed for (``None`` until the scheduler has seen the trigger)."""

    trigger_id: str
    workflow_id: str
    expression: str
    timezone: str | None
    cursor_expression: str | None = None
    cursor_timezone: str | None = None
    next_fire_at: datetime | None = None
    #: What the trigger's runs start from (issue 8).
    cron_cursor: CronCursor = CronCursor.NONE
    cron_cursor_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionBatch:
    """One bounded pass of a project's retention sweep: what it removed. ``more``: some step
    hit the batch limit, so another pass has work."""

    deleted_work_orders: int = 0
    deleted_dataclips: int = 0
    wiped_dataclips: int = 0
    more: bool = False


@dataclass(frozen=True, slots=True)
class CronTick:
    """Firing one tick: move the trigger's cursor from ``due_at`` to ``next_fire_at`` and, in
    the same transaction, enqueue ``run`` (``None``: the tick is skipped, only the cursor
    moves). ``expression`` and ``timezone`` are the schedule the times were computed for."""

    trigger_id: str
    expression: str
    timezone: str
    due_at: datetime
    next_fire_at: datetime
    run: EnqueueRequest | None
    #: Where the run's input comes from when ``run`` names none (issue 8).
    cron_cursor: CronCursor = CronCursor.NONE
    cron_cursor_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A REST API token as stored: ``digest`` is the SHA-256 (hex) of its secret part."""

    id: str
    name: str
    digest: str
    inserted_at: datetime | None = None
