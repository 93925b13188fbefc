"""Projects, workflows, their triggers, snapshots and policies: the values of catalog.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from fulmen.plan import Edge, Job

__all__ = [
    "CronCursor",
    "Project",
    "RetentionPolicy",
    "RetryPolicy",
    "Snapshot",
    "StoredWorkflow",
    "TriggerInfo",
    "TriggerType",
    "WebhookReply",
    "Workflow",
    "WorkflowTrigger",
]


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
    #: Issue 18: whether the project's viewers see dataclip bodies (run inputs and outputs);
    #: editors and stronger roles always do (coordinator/access.py).
    viewers_see_bodies: bool = False
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
    #: Whether the trigger has webhook-auth methods, as of the same read (issue 8).
    has_auth: bool = True
