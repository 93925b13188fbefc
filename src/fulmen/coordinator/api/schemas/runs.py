"""Runs, their steps, logs and dataclips, and starting a run by hand: api/runs.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    Field,
)

from fulmen.coordinator.api.schemas.common import InputDoc, JsonObject
from fulmen.coordinator.api.schemas.keychains import KeychainChoiceDoc
from fulmen.store import (
    Dataclip,
    Enqueued,
    LogEntry,
    Run,
    RunDetail,
    Step,
)


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
    #: The job languages the run needs: only a worker that runs them all claims it.
    languages: list[str]
    #: Why a queued run is not being claimed: no worker connected to this coordinator runs
    #: its languages (``"a worker that runs JavaScript"``); ``null`` otherwise.
    waiting_for: str | None = None

    @classmethod
    def of(cls, run: Run, waiting_for: str | None = None) -> RunDoc:
        fields = {name: getattr(run, name) for name in cls.model_fields if name != "waiting_for"}
        return cls(
            **{
                **fields,
                "state": run.state.value,
                "priority": int(run.priority),
                "languages": list(run.languages),
                "waiting_for": waiting_for,
            }
        )


class RunDetailDoc(RunDoc):
    steps: list[StepDoc]
    keychains: list[KeychainChoiceDoc] = Field(
        default=[],
        description="What each keychain its jobs name chose for it when it was made: the "
        "credential (never its value) and the value that matched, or the default.",
    )

    @classmethod
    def of_detail(cls, detail: RunDetail, waiting_for: str | None = None) -> RunDetailDoc:
        run = RunDoc.of(detail.run, waiting_for).model_dump()
        return cls(
            **run,
            steps=[StepDoc.of(step) for step in detail.steps],
            keychains=[KeychainChoiceDoc.of(choice) for choice in detail.keychains],
        )


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


class ManualRunIn(InputDoc):
    #: The run's input state (a saved input dataclip).
    input: JsonObject = Field(default_factory=dict)
    #: Instead of ``input``: an earlier dataclip of the workflow's project, run again as the
    #: input (the dashboard's "run with an earlier input").
    dataclip_id: str | None = None
    #: A trigger or job to start from; the first trigger when absent.
    starting_node_id: str | None = None


class StartedDoc(BaseModel):
    work_order_id: str
    run_id: str
    dataclip_id: str | None

    @classmethod
    def of(cls, made: Enqueued) -> StartedDoc:
        return cls(
            work_order_id=made.work_order_id, run_id=made.run_id, dataclip_id=made.dataclip_id
        )
