"""The REST API's documents, as pydantic models: the one place pydantic is used (the HTTP
edge, where FastAPI turns them into the OpenAPI document). Each converts to and from the
store's frozen values; no handler passes a pydantic model further in."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

from fulmen import plan
from fulmen.store import (
    CredentialInfo,
    Dataclip,
    LogEntry,
    Project,
    Run,
    RunDetail,
    Step,
    StoredWorkflow,
    TriggerType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
)

__all__ = [
    "CredentialDoc",
    "CredentialIn",
    "DataclipDoc",
    "ErrorDoc",
    "LogDoc",
    "ManualRunIn",
    "PageDoc",
    "ProjectDoc",
    "ProjectIn",
    "RunDetailDoc",
    "RunDoc",
    "StartedDoc",
    "WorkflowDoc",
    "WorkflowIn",
]

T = TypeVar("T")


def _new_id() -> str:
    return str(uuid4())


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageDoc(BaseModel, Generic[T]):
    items: list[T]
    #: Pass as ``cursor`` for the next page; ``null`` on the last.
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorDoc(BaseModel):
    error: ErrorBody


class ProjectIn(_Doc):
    id: str = Field(default_factory=_new_id)
    name: str = Field(min_length=1)
    concurrency: int | None = Field(default=None, gt=0)

    def to_store(self, project_id: str | None = None) -> Project:
        return Project(id=project_id or self.id, name=self.name, concurrency=self.concurrency)


class ProjectDoc(BaseModel):
    id: str
    name: str
    concurrency: int | None
    inserted_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, project: Project) -> ProjectDoc:
        return cls(**{name: getattr(project, name) for name in cls.model_fields})


class JobDoc(_Doc):
    id: str = Field(default_factory=_new_id)
    name: str | None = None
    body: str
    #: e.g. ``@openfn/language-common@latest``, ``common``, ``http``.
    adaptor: str
    credential_id: str | None = None


class TriggerDoc(_Doc):
    id: str = Field(default_factory=_new_id)
    type: Literal["webhook", "cron", "kafka"] = "webhook"
    enabled: bool = True
    #: 5 fields (minute hour day month weekday) or @daily and the like.
    cron_expression: str | None = None
    #: IANA zone of the cron expression; UTC when absent.
    timezone: str | None = None
    webhook_reply: Literal["before_start", "after_completion"] | None = None


class EdgeDoc(_Doc):
    id: str = Field(default_factory=_new_id)
    source_trigger_id: str | None = None
    source_job_id: str | None = None
    target_job_id: str
    #: ``always``, ``on_job_success``, ``on_job_failure`` or an expression over ``state``.
    condition: str = "always"
    enabled: bool = True


class WorkflowIn(_Doc):
    """A whole workflow: its jobs, triggers and edges are saved together."""

    id: str = Field(default_factory=_new_id)
    name: str = Field(min_length=1)
    concurrency: int | None = Field(default=None, gt=0)
    jobs: list[JobDoc] = []
    triggers: list[TriggerDoc] = []
    edges: list[EdgeDoc] = []

    def to_store(self, project_id: str, workflow_id: str | None = None) -> Workflow:
        return Workflow(
            id=workflow_id or self.id,
            project_id=project_id,
            name=self.name,
            concurrency=self.concurrency,
            jobs=tuple(plan.Job(**job.model_dump()) for job in self.jobs),
            triggers=tuple(
                WorkflowTrigger(
                    id=t.id,
                    type=TriggerType(t.type),
                    enabled=t.enabled,
                    cron_expression=t.cron_expression,
                    timezone=t.timezone,
                    webhook_reply=WebhookReply(t.webhook_reply) if t.webhook_reply else None,
                )
                for t in self.triggers
            ),
            edges=tuple(plan.Edge(**edge.model_dump()) for edge in self.edges),
        )


class WorkflowDoc(BaseModel):
    id: str
    project_id: str
    name: str
    concurrency: int | None
    jobs: list[JobDoc]
    triggers: list[TriggerDoc]
    edges: list[EdgeDoc]
    #: Goes up by one on every save; send it back (``expected_version``) to replace.
    version: int
    snapshot_id: str
    inserted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stored: StoredWorkflow) -> WorkflowDoc:
        w = stored.workflow
        return cls(
            id=w.id,
            project_id=w.project_id,
            name=w.name,
            concurrency=w.concurrency,
            jobs=[
                JobDoc(
                    id=j.id,
                    name=j.name,
                    body=j.body,
                    adaptor=j.adaptor,
                    credential_id=j.credential_id,
                )
                for j in w.jobs
            ],
            triggers=[
                TriggerDoc(
                    id=t.id,
                    type=t.type.value,
                    enabled=t.enabled,
                    cron_expression=t.cron_expression,
                    timezone=t.timezone,
                    webhook_reply=t.webhook_reply.value if t.webhook_reply else None,
                )
                for t in w.triggers
            ],
            edges=[
                EdgeDoc(
                    id=e.id,
                    source_trigger_id=e.source_trigger_id,
                    source_job_id=e.source_job_id,
                    target_job_id=e.target_job_id,
                    condition=e.condition,
                    enabled=e.enabled,
                )
                for e in w.edges
            ],
            version=stored.version,
            snapshot_id=stored.snapshot_id,
            inserted_at=stored.inserted_at,
            updated_at=stored.updated_at,
        )


class CredentialIn(_Doc):
    id: str = Field(default_factory=_new_id)
    name: str = Field(min_length=1)
    #: The secret document (``state.configuration``). Written, never read back.
    body: dict[str, Any]


class CredentialDoc(BaseModel):
    """A credential without its value: values are write-only."""

    id: str
    project_id: str
    name: str
    inserted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: CredentialInfo) -> CredentialDoc:
        return cls(**{name: getattr(info, name) for name in cls.model_fields})


class StepDoc(BaseModel):
    id: str
    job_id: str
    state: str
    input_dataclip_id: str | None
    output_dataclip_id: str | None
    error_type: str | None
    error_message: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, step: Step) -> StepDoc:
        fields = {name: getattr(step, name) for name in cls.model_fields}
        return cls(**{**fields, "state": step.state.value})


class RunDoc(BaseModel):
    id: str
    work_order_id: str
    workflow_id: str
    project_id: str
    snapshot_id: str
    dataclip_id: str | None
    starting_node_id: str
    state: str
    queue: str
    priority: int
    worker_name: str | None
    error_type: str | None
    error_message: str | None
    final_dataclip_id: str | None
    inserted_at: datetime
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: Run) -> RunDoc:
        fields = {name: getattr(run, name) for name in cls.model_fields}
        return cls(**{**fields, "state": run.state.value, "priority": int(run.priority)})


class RunDetailDoc(RunDoc):
    steps: list[StepDoc]

    @classmethod
    def of_detail(cls, detail: RunDetail) -> RunDetailDoc:
        run = RunDoc.of(detail.run).model_dump()
        return cls(**run, steps=[StepDoc.of(step) for step in detail.steps])


class LogDoc(BaseModel):
    id: str
    step_id: str | None
    source: str
    level: str
    message: str
    timestamp: datetime

    @classmethod
    def of(cls, entry: LogEntry) -> LogDoc:
        return cls(**{name: getattr(entry, name) for name in cls.model_fields})


class DataclipDoc(BaseModel):
    id: str
    project_id: str
    type: str
    #: ``null`` once wiped.
    body: Any
    request: Any
    wiped_at: datetime | None
    inserted_at: datetime

    @classmethod
    def of(cls, dataclip: Dataclip) -> DataclipDoc:
        body = dataclip.body
        if isinstance(body, dict) and "configuration" in body:
            body = {k: v for k, v in body.items() if k != "configuration"}
        return cls(
            id=dataclip.id,
            project_id=dataclip.project_id,
            type=dataclip.type.value,
            body=body,
            request=dataclip.request,
            wiped_at=dataclip.wiped_at,
            inserted_at=dataclip.inserted_at,
        )


class ManualRunIn(_Doc):
    #: The run's input state (a saved input dataclip).
    input: dict[str, Any] = Field(default_factory=dict)
    #: A trigger or job to start from; the first trigger when absent.
    starting_node_id: str | None = None


class StartedDoc(BaseModel):
    work_order_id: str
    run_id: str
    dataclip_id: str | None
