"""Projects, workflows, their snapshots, and credentials: the documents of api/catalog.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, cast

from pydantic import (
    BaseModel,
    Field,
)

from fulmen import plan
from fulmen.coordinator.api.schemas.common import (
    MAX_INT32,
    MAX_RETENTION_DAYS,
    InputDoc,
    JsonObject,
    NewId,
)
from fulmen.store import (
    CredentialInfo,
    CronCursor,
    Project,
    RetentionPolicy,
    RetryPolicy,
    Snapshot,
    StoredWorkflow,
    TriggerType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
)

#: A job's language (plan.LANGUAGES), as the schema lists them.
Language = Literal["python", "javascript"]
#: Requirements one job may list: far more than a job imports, few enough to resolve at once.
MAX_REQUIREMENTS: Final = 100
#: One requirement, as a job lists it (``httpx==0.28.1``); read by fulmen.python_requirements.
Requirement = Annotated[str, Field(min_length=1, max_length=500)]


class ProjectIn(InputDoc):
    id: NewId
    name: str = Field(min_length=1)
    #: Runs of the project in flight at once (claimed or started); ``null``: no limit.
    concurrency: int | None = Field(default=None, gt=0, le=MAX_INT32)
    #: Days of run history kept; ``null``: forever.
    history_retention_period: int | None = Field(default=None, gt=0, le=MAX_RETENTION_DAYS)
    #: Days dataclip bodies are kept, at most the history's; ``null``: as long as it.
    dataclip_retention_period: int | None = Field(default=None, gt=0, le=MAX_RETENTION_DAYS)
    #: ``erase_all``: no input or output body is kept beyond its run.
    retention_policy: Literal["retain_all", "erase_all"] = "retain_all"
    viewers_see_bodies: bool = Field(
        default=False,
        description="Whether the project's viewers see dataclip bodies (run inputs and "
        "outputs); editors, admins and owners always do",
    )

    def to_store(self, project_id: str | None = None) -> Project:
        return Project(
            id=project_id or self.id,
            name=self.name,
            concurrency=self.concurrency,
            history_retention_period=self.history_retention_period,
            dataclip_retention_period=self.dataclip_retention_period,
            retention_policy=RetentionPolicy(self.retention_policy),
            viewers_see_bodies=self.viewers_see_bodies,
        )


class ProjectDoc(BaseModel):
    id: str
    name: str
    concurrency: int | None
    history_retention_period: int | None
    dataclip_retention_period: int | None
    retention_policy: str
    viewers_see_bodies: bool
    inserted_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, project: Project) -> ProjectDoc:
        return cls(**{name: getattr(project, name) for name in cls.model_fields})


class JobDoc(InputDoc):
    id: NewId
    name: str | None = None
    body: str = Field(
        description="The job's source, in its language. A body that does not parse is "
        "refused (422, code syntax_error, naming the line and column)."
    )
    adaptor: str = Field(
        description="A Python job's: common or http (Fulmen's own), a module installed beside "
        "the worker (yaml, mycompany.adaptor), or a package from the Python package index at "
        "a version: pandas@2.2.3, pandas@latest, pandas@>=2,<3, or a requirement "
        "(pandas==2.2.3). A JavaScript job's: an @openfn/language-* package with a version, "
        "an npm range or a tag (@latest when none is given), or common or http for OpenFn's. "
        "A package is saved, and read back, as the exact version its index offers at the "
        "save (pandas@2.2.3, @openfn/language-common@3.3.4); one that cannot be read is a "
        "422 (bad_adaptor), a package or version that does not exist a 422 (unknown_adaptor, "
        "unknown_adaptor_version, unknown_package, unknown_package_version), a registry or "
        "index that cannot be reached a 502 (registry_unreachable), and nothing is saved."
    )
    requirements: list[Requirement] = Field(
        default=[],
        max_length=MAX_REQUIREMENTS,
        description="A Python job's other packages, those its code imports itself, as PEP "
        "508 requirements from the package index (httpx==0.28.1, httpx>=0.27, "
        "httpx[http2]@latest; no URL or path). Saved, and read back, at the exact version "
        "the index offers at the save (httpx==0.28.1). A workflow's Python jobs share one "
        "environment: two jobs may not pin one package at two versions (422, "
        "conflicting_requirements). A requirement that cannot be read is a 422 "
        "(bad_requirement, field naming it); a JavaScript job has none. Always given in "
        "answers.",
    )
    credential_id: str | None = None
    keychain_id: str | None = Field(
        default=None,
        description="A keychain of the project (/api/projects/{id}/keychains) that picks the "
        "job's credential by a value in each run's input; instead of credential_id, not with "
        "it (422).",
    )
    language: Language | None = Field(
        default=None,
        description="The language of the body and of the conditions of the edges leaving "
        "the job. Absent: javascript for an @openfn/language-* adaptor, else python. Always "
        "given in answers.",
    )

    def to_plan(self) -> plan.Job:
        """The job, its language said (absent: the adaptor's)."""
        return plan.Job(
            id=self.id,
            name=self.name,
            body=self.body,
            adaptor=self.adaptor,
            credential_id=self.credential_id,
            keychain_id=self.keychain_id,
            language=plan.language_of(self.adaptor, self.language),
            requirements=tuple(self.requirements),
        )


class TriggerDoc(InputDoc):
    id: NewId
    type: Literal["webhook", "cron", "kafka"] = "webhook"
    enabled: bool = True
    #: 5 fields (minute hour day month weekday) or @daily and the like.
    cron_expression: str | None = None
    #: IANA zone of the cron expression; UTC when absent.
    timezone: str | None = None
    webhook_reply: Literal["before_start", "after_completion"] | None = None
    #: What a cron trigger's runs start from: ``none`` ({}), ``last_run`` (the final state
    #: of the last successful run) or ``job`` (the last successful output of
    #: ``cron_cursor_job_id``).
    cron_cursor: Literal["none", "last_run", "job"] = "none"
    cron_cursor_job_id: str | None = None

    @classmethod
    def of(cls, t: WorkflowTrigger) -> TriggerDoc:
        return cls(
            id=t.id,
            type=t.type.value,
            enabled=t.enabled,
            cron_expression=t.cron_expression,
            timezone=t.timezone,
            webhook_reply=t.webhook_reply.value if t.webhook_reply else None,
            cron_cursor=CronCursor(t.cron_cursor).value,
            cron_cursor_job_id=t.cron_cursor_job_id,
        )


class RetryDoc(InputDoc):
    """Automatic retries of runs that end ``crash``, ``kill`` or ``lost`` (and ``fail`` with
    ``on_fail``): up to ``max_retries``, the n-th after ``backoff_ms * 2^(n-1)`` ms, at most
    ``backoff_max_ms``."""

    max_retries: int = Field(default=0, ge=0, le=100)
    backoff_ms: int = Field(default=10_000, gt=0, le=MAX_INT32)
    backoff_max_ms: int = Field(default=600_000, gt=0, le=MAX_INT32)
    on_fail: bool = False

    def to_store(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetryDoc:
        return cls(
            max_retries=policy.max_retries,
            backoff_ms=policy.backoff_ms,
            backoff_max_ms=policy.backoff_max_ms,
            on_fail=policy.on_fail,
        )


class EdgeDoc(InputDoc):
    id: NewId
    source_trigger_id: str | None = None
    source_job_id: str | None = None
    target_job_id: str
    #: ``always``, ``on_job_success``, ``on_job_failure`` or an expression over ``state``.
    condition: str = "always"
    enabled: bool = True


class WorkflowIn(InputDoc):
    """A whole workflow: its jobs, triggers and edges are saved together."""

    id: NewId
    name: str = Field(min_length=1)
    #: Runs of the workflow in flight at once; 1: strictly one at a time, in order.
    concurrency: int | None = Field(default=None, gt=0, le=MAX_INT32)
    retry: RetryDoc = Field(default_factory=RetryDoc)
    #: At least one: a workflow with none cannot be saved.
    jobs: list[JobDoc] = Field(min_length=1)
    triggers: list[TriggerDoc] = Field(default=[])
    edges: list[EdgeDoc] = Field(default=[])

    def to_store(self, project_id: str, workflow_id: str | None = None) -> Workflow:
        return Workflow(
            id=workflow_id or self.id,
            project_id=project_id,
            name=self.name,
            concurrency=self.concurrency,
            retry=self.retry.to_store(),
            jobs=tuple(job.to_plan() for job in self.jobs),
            triggers=tuple(
                WorkflowTrigger(
                    id=t.id,
                    type=TriggerType(t.type),
                    enabled=t.enabled,
                    cron_expression=t.cron_expression,
                    timezone=t.timezone,
                    webhook_reply=WebhookReply(t.webhook_reply) if t.webhook_reply else None,
                    cron_cursor=CronCursor(t.cron_cursor),
                    cron_cursor_job_id=t.cron_cursor_job_id,
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
    retry: RetryDoc
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
        return cls(
            **_workflow_fields(stored.workflow),
            version=stored.version,
            snapshot_id=stored.snapshot_id,
            inserted_at=stored.inserted_at,
            updated_at=stored.updated_at,
        )


class SnapshotDoc(BaseModel):
    """One saved version of a workflow, as runs of that version ran it."""

    id: str
    workflow_id: str
    version: int
    inserted_at: datetime
    workflow: dict[str, Any]

    @classmethod
    def of(cls, snapshot: Snapshot) -> SnapshotDoc:
        return cls(
            id=snapshot.id,
            workflow_id=snapshot.workflow_id,
            version=snapshot.version,
            inserted_at=snapshot.inserted_at,
            workflow=_workflow_fields(snapshot.workflow),
        )


def _workflow_fields(w: Workflow) -> dict[str, Any]:
    return dict(
        id=w.id,
        project_id=w.project_id,
        name=w.name,
        concurrency=w.concurrency,
        retry=RetryDoc.of(w.retry),
        jobs=[
            JobDoc(
                id=j.id,
                name=j.name,
                body=j.body,
                adaptor=j.adaptor,
                requirements=list(j.requirements),
                credential_id=j.credential_id,
                keychain_id=j.keychain_id,
                language=cast(Language, j.runs_in),  # the store holds only these
            )
            for j in w.jobs
        ],
        triggers=[TriggerDoc.of(t) for t in w.triggers],
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
    )


class CredentialIn(InputDoc):
    id: NewId
    name: str = Field(min_length=1)
    #: The secret document (``state.configuration``). Written, never read back.
    body: JsonObject


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
