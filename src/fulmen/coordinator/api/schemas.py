"""The REST API's documents, as pydantic models: the one place pydantic is used (the HTTP
edge, where FastAPI turns them into the OpenAPI document). Each converts to and from the
store's frozen values; no handler passes a pydantic model further in."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Generic, Literal, TypeVar
from uuid import uuid4

from fastapi import Path
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)
from typing_extensions import TypeAliasType

from fulmen import plan
from fulmen.store import (
    CredentialInfo,
    CronCursor,
    Dataclip,
    LogEntry,
    NewWebhookAuthMethod,
    Project,
    RetentionPolicy,
    RetryPolicy,
    Run,
    RunDetail,
    Snapshot,
    Step,
    StoredWorkflow,
    TriggerType,
    WebhookAuthMethod,
    WebhookAuthType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
    WorkOrder,
    retention_policy,
)
from fulmen.store.webhook_auth import PASSWORD_LENGTHS

__all__ = [
    "MAX_INT32",
    "MAX_JSON_DEPTH",
    "MAX_RETENTION_DAYS",
    "CredentialDoc",
    "CredentialIn",
    "DataclipDoc",
    "DetailDoc",
    "ErrorDoc",
    "JsonObject",
    "LogDoc",
    "ManualRunIn",
    "PageDoc",
    "PathId",
    "ProjectDoc",
    "ProjectIn",
    "RerunIn",
    "RerunsDoc",
    "RunDetailDoc",
    "RunDoc",
    "SnapshotDoc",
    "StartedDoc",
    "Timestamp",
    "TriggerAuthIn",
    "WebhookAuthMethodDoc",
    "WebhookAuthMethodIn",
    "WorkOrderDoc",
    "WorkflowDoc",
    "WorkflowIn",
]

T = TypeVar("T")


def _new_id() -> str:
    return str(uuid4())


#: The largest count or duration in milliseconds a document may hold: PostgreSQL's
#: ``integer`` columns (SQLite's are 64-bit) hold no more.
MAX_INT32: Final = 2**31 - 1
#: The longest retention period, in days (100 years): a longer one is "forever" (``null``),
#: and one near ``timedelta``'s limit would make the retention sweep's dates overflow.
MAX_RETENTION_DAYS: Final = retention_policy.MAX_DAYS
#: How deep arrays and objects may nest in a JSON document stored as it was sent (a
#: credential's body, a manual run's input); the store's encoder stops at 255.
MAX_JSON_DEPTH: Final = 64
#: Numbers in such a document fit 64 bits (-2^63 <= n < 2^63), as the store's JSON encoder
#: writes integers.
_MIN_NUMBER: Final = -(2**63)
_NUMBER_BOUND: Final = 2**63

#: Strings in it (keys too) hold no NUL character: PostgreSQL's jsonb cannot store one, so
#: the store refuses it in both dialects.
_NO_NUL: Final = "^[^\\u0000]*$"
_JSON_VALUE_REF: Final = {"$ref": "#/components/schemas/JsonValue"}

#: What the OpenAPI document says such a document holds (all :func:`_storable` checks but the
#: depth: JSON Schema has no word for it). Written out, as FastAPI places it, because pydantic
#: cannot say "a number" without an integer branch nor bound a key.
JsonValue = TypeAliasType(
    "JsonValue",
    Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "propertyNames": {"pattern": _NO_NUL},
                        "additionalProperties": _JSON_VALUE_REF,
                    },
                    {"type": "array", "items": _JSON_VALUE_REF},
                    # bounds exact as doubles: FastAPI writes them as floats
                    {"type": "number", "minimum": _MIN_NUMBER, "exclusiveMaximum": _NUMBER_BOUND},
                    {"type": "string", "pattern": _NO_NUL},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            }
        ),
    ],
)


def _storable(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"arrays and objects nest more than {MAX_JSON_DEPTH} deep")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if not _MIN_NUMBER <= value < _NUMBER_BOUND:
            raise ValueError("a number beyond 64 bits (-2^63 to 2^63-1)")
    elif isinstance(value, str):
        _text(value)
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text(key)
            _storable(item, depth + 1)


def _text(value: str) -> None:
    if "\x00" in value:
        raise ValueError("a string with the NUL character (\\u0000)")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("a string with a lone surrogate (not UTF-8)") from None


def _json_object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("a JSON object")
    _storable(value)
    return value


#: A JSON object the store keeps as it was sent: 64-bit integers, UTF-8 strings, at most
#: :data:`MAX_JSON_DEPTH` levels deep (422 otherwise).
JsonObject = Annotated[
    dict[str, Any],
    PlainValidator(_json_object, json_schema_input_type=dict[str, JsonValue]),
    Field(
        description=f"A JSON object, nested at most {MAX_JSON_DEPTH} deep",
        json_schema_extra={"propertyNames": {"pattern": _NO_NUL}},
    ),
]
#: No ``/`` in an id: a path cannot carry one (``%2F`` is decoded before routing), so a
#: document whose id had one could be made but never read, changed or deleted.
_ID_PATTERN: Final = "^[^/]+$"
#: The id of a new document; one is made when absent.
NewId = Annotated[str, Field(default_factory=_new_id, min_length=1, pattern=_ID_PATTERN)]
#: An id in a route's path: never empty (``/api/projects/`` is the listing, not a project).
PathId = Annotated[str, Path(min_length=1, pattern=_ID_PATTERN)]

_RFC3339: Final = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII
)


def _rfc3339(value: object) -> object:
    """Only what the schema's ``date-time`` allows: pydantic alone also takes a number of
    seconds (``0.5``) or a date."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("a date-time as RFC 3339 has it, e.g. 2025-01-31T12:00:00Z")
    return value


#: A ``date-time`` query parameter, with its zone.
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]


class _Doc(BaseModel):
    """A document the API reads: its fields as the schema says, and nothing else (strict: no
    ``true`` or ``"1"`` where an integer goes, no number where a string does)."""

    model_config = ConfigDict(extra="forbid", strict=True)


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


class DetailDoc(BaseModel):
    """A 401 (what is wrong with the token) or a 400 (a body that is not JSON)."""

    detail: str


class ProjectIn(_Doc):
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

    def to_store(self, project_id: str | None = None) -> Project:
        return Project(
            id=project_id or self.id,
            name=self.name,
            concurrency=self.concurrency,
            history_retention_period=self.history_retention_period,
            dataclip_retention_period=self.dataclip_retention_period,
            retention_policy=RetentionPolicy(self.retention_policy),
        )


class ProjectDoc(BaseModel):
    id: str
    name: str
    concurrency: int | None
    history_retention_period: int | None
    dataclip_retention_period: int | None
    retention_policy: str
    inserted_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, project: Project) -> ProjectDoc:
        return cls(**{name: getattr(project, name) for name in cls.model_fields})


class JobDoc(_Doc):
    id: NewId
    name: str | None = None
    body: str
    #: e.g. ``@openfn/language-common@latest``, ``common``, ``http``.
    adaptor: str
    credential_id: str | None = None


class TriggerDoc(_Doc):
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


class RetryDoc(_Doc):
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


class EdgeDoc(_Doc):
    id: NewId
    source_trigger_id: str | None = None
    source_job_id: str | None = None
    target_job_id: str
    #: ``always``, ``on_job_success``, ``on_job_failure`` or an expression over ``state``.
    condition: str = "always"
    enabled: bool = True


class WorkflowIn(_Doc):
    """A whole workflow: its jobs, triggers and edges are saved together."""

    id: NewId
    name: str = Field(min_length=1)
    #: Runs of the workflow in flight at once; 1: strictly one at a time, in order.
    concurrency: int | None = Field(default=None, gt=0, le=MAX_INT32)
    retry: RetryDoc = Field(default_factory=RetryDoc)
    #: At least one: a workflow with none cannot be saved.
    jobs: list[JobDoc] = Field(min_length=1)
    triggers: list[TriggerDoc] = []
    edges: list[EdgeDoc] = []

    def to_store(self, project_id: str, workflow_id: str | None = None) -> Workflow:
        return Workflow(
            id=workflow_id or self.id,
            project_id=project_id,
            name=self.name,
            concurrency=self.concurrency,
            retry=self.retry.to_store(),
            jobs=tuple(plan.Job(**job.model_dump()) for job in self.jobs),
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
                credential_id=j.credential_id,
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


class CredentialIn(_Doc):
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
    #: 1, or n + 1 for the automatic retry of attempt n.
    attempt: int
    #: The run this one retries automatically (same work order).
    retry_of: str | None
    #: The run this one reruns by hand, from ``starting_node_id`` (same work order).
    rerun_of: str | None
    #: A retry is not claimed before this time.
    not_before: datetime | None
    #: When a cancel was asked of the worker that has the run.
    cancel_requested_at: datetime | None
    #: The workflow version the run runs (with ``snapshot_id``: GET /api/snapshots/{id}).
    snapshot_version: int | None

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
    input: JsonObject = Field(default_factory=dict)
    #: A trigger or job to start from; the first trigger when absent.
    starting_node_id: str | None = None


class StartedDoc(BaseModel):
    work_order_id: str
    run_id: str
    dataclip_id: str | None


class RerunIn(_Doc):
    """Run work orders again, each as a new run in it: from ``job_id``'s step in its latest
    run that has one (that step's stored input is the new run's input), or from the start
    (its own input) when ``job_id`` is absent."""

    work_order_ids: list[str] = Field(min_length=1, max_length=1000)
    job_id: str | None = None


class RerunErrorDoc(BaseModel):
    work_order_id: str
    code: str
    message: str


class RerunsDoc(BaseModel):
    """What a rerun of many work orders made: one run each, or why not (each work order is
    rerun on its own; one that cannot be does not stop the others)."""

    runs: list[StartedDoc]
    errors: list[RerunErrorDoc]


class WorkOrderDoc(BaseModel):
    """A work order: one trigger event's input, and every run made for it, newest first.
    Its ``state`` is its latest run's."""

    id: str
    workflow_id: str
    trigger_id: str | None
    dataclip_id: str | None
    inserted_at: datetime
    state: str | None
    runs: list[RunDoc]

    @classmethod
    def of(cls, order: WorkOrder, runs: list[Run]) -> WorkOrderDoc:
        return cls(
            id=order.id,
            workflow_id=order.workflow_id,
            trigger_id=order.trigger_id,
            dataclip_id=order.dataclip_id,
            inserted_at=order.inserted_at,
            state=order.state.value if order.state else None,
            runs=[RunDoc.of(run) for run in runs],
        )


class _MethodIn(_Doc):
    id: NewId
    name: str = Field(min_length=1)

    def to_store(self, project_id: str) -> NewWebhookAuthMethod:
        given = self.model_dump()
        return NewWebhookAuthMethod(
            id=self.id,
            project_id=project_id,
            name=self.name,
            auth_type=WebhookAuthType(given["auth_type"]),
            api_key=given.get("api_key"),
            username=given.get("username"),
            password=given.get("password"),
        )


class ApiKeyMethodIn(_MethodIn):
    """An ``api`` method: the ``x-api-key`` header. ``api_key`` absent: one is made (64 hex
    characters) and shown in the answer, once."""

    auth_type: Literal["api"]
    api_key: str | None = Field(default=None, min_length=16, repr=False)


class BasicMethodIn(_MethodIn):
    """A ``basic`` method: HTTP Basic, with a ``username`` (no ``:``) and a ``password`` of 8
    to 72 characters (Lightning's bounds)."""

    auth_type: Literal["basic"]
    username: str = Field(min_length=1, pattern="^[^:]+$", repr=False)
    password: str = Field(
        min_length=PASSWORD_LENGTHS.start, max_length=PASSWORD_LENGTHS.stop - 1, repr=False
    )


#: A new webhook auth method, by its ``auth_type``. Secrets are write-only: stored encrypted,
#: shown again never (but a made key, once).
WebhookAuthMethodIn = Annotated[ApiKeyMethodIn | BasicMethodIn, Field(discriminator="auth_type")]


class WebhookAuthMethodDoc(BaseModel):
    id: str
    project_id: str
    name: str
    auth_type: str
    inserted_at: datetime
    updated_at: datetime
    #: Only in the answer to creating an ``api`` method: the key, this once.
    api_key: str | None = None

    @classmethod
    def of(cls, method: WebhookAuthMethod) -> WebhookAuthMethodDoc:
        return cls(
            id=method.id,
            project_id=method.project_id,
            name=method.name,
            auth_type=method.auth_type.value,
            inserted_at=method.inserted_at,
            updated_at=method.updated_at,
            api_key=method.api_key,
        )


class TriggerAuthIn(_Doc):
    """The auth methods a webhook trigger takes from now on: any one of them will do; an
    empty list opens the trigger again."""

    method_ids: list[str] = Field(max_length=100)
