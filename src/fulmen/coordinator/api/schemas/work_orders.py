"""Work orders and reruns: api/work_orders.py."""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    Field,
)

from fulmen.coordinator.api.schemas.common import InputDoc
from fulmen.coordinator.api.schemas.runs import RunDoc, StartedDoc
from fulmen.store import (
    Run,
    WorkOrder,
)


class RerunIn(InputDoc):
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
