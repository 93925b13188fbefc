"""Reruns (issue 8): a work order run again, as a new run in it, from a chosen step.

A step's stored input is what its job got, so running the workflow from that job with that
input does again what the step did, and everything downstream of it. Lightning's retry from a
step works the same way (lib/lightning/work_orders.ex); as there, the new run runs the
workflow's current version, and an input that was wiped (retention, ``erase_all``) cannot be
replayed: ConflictError ``dataclip_wiped``, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store.db import Row, Tx, loads
from fulmen.store.models.queue import Enqueued, RerunRequest
from fulmen.store.newruns import NewRun, insert_run, languages_of
from fulmen.store.queue import encode_options

__all__ = ["rerun"]


async def rerun(tx: Tx, request: RerunRequest, now: datetime) -> Enqueued:
    """Enqueue the rerun ``request`` describes (see RerunRequest)."""
    work_order_id, start, dataclip_id, rerun_of = await _origin(tx, request)
    order = await tx.fetchone("get_work_order", {"id": work_order_id})
    assert order is not None  # a run of it was just read
    workflow = await tx.fetchone("get_workflow", {"id": order["workflow_id"]})
    assert workflow is not None  # work orders go with their workflow
    document = loads(workflow["document"])
    nodes = {node["id"] for node in document["jobs"] + document["triggers"]}
    if start not in nodes:
        raise NotFoundError(
            f"{start} is no longer a job or trigger of workflow {order['workflow_id']}; "
            "a rerun runs the workflow's current version",
            field="job_id",
        )
    if dataclip_id is not None:
        clip = await tx.fetchone("get_dataclip", {"id": dataclip_id})
        if clip is None or clip["wiped_at"] is not None:
            raise ConflictError(
                f"the input of this rerun (dataclip {dataclip_id}) was wiped, so it cannot be "
                "run again",
                field="dataclip_id",
                code="dataclip_wiped",
            )
    encode_options(request.options)
    run_id = str(uuid4())
    await insert_run(
        tx,
        NewRun(
            id=run_id,
            work_order_id=work_order_id,
            workflow_id=order["workflow_id"],
            project_id=workflow["project_id"],
            snapshot_id=workflow["snapshot_id"],
            dataclip_id=dataclip_id,
            starting_node_id=start,
            queue=request.queue,
            priority=request.priority,
            options=request.options,
            rerun_of=rerun_of,
            languages=languages_of(document),
            jobs=document["jobs"],
        ),
        now,
    )
    return Enqueued(
        work_order_id=work_order_id,
        run_id=run_id,
        dataclip_id=dataclip_id,
        workflow_id=order["workflow_id"],
        project_id=workflow["project_id"],
    )


async def _origin(tx: Tx, request: RerunRequest) -> tuple[str, str, str | None, str]:
    """(work order, starting node, input dataclip, run rerun) of ``request``."""
    if request.step_id is not None:
        if request.work_order_id is not None or request.job_id is not None:
            raise InputError("rerun from a step_id, or from a work_order_id (and job_id)")
        step = await tx.fetchone("get_step", {"id": request.step_id})
        if step is None:
            raise NotFoundError(f"step {request.step_id} does not exist", field="step_id")
        return step["work_order_id"], step["job_id"], step["input_dataclip_id"], step["run_id"]
    if request.work_order_id is None:
        raise InputError("a rerun names a step_id, or a work_order_id")
    if request.job_id is not None:
        found = await tx.fetchone(
            "latest_step_of_job", {"work_order_id": request.work_order_id, "job_id": request.job_id}
        )
        if found is None:
            await _work_order_exists(tx, request.work_order_id)
            raise NotFoundError(
                f"no run of work order {request.work_order_id} has a step of job {request.job_id}",
                field="job_id",
            )
        return request.work_order_id, found["job_id"], found["input_dataclip_id"], found["run_id"]
    first = await tx.fetchone("first_run_of_work_order", {"work_order_id": request.work_order_id})
    if first is None:
        raise NotFoundError(
            f"work order {request.work_order_id} does not exist", field="work_order_id"
        )
    return _from_start(first)


async def _work_order_exists(tx: Tx, work_order_id: str) -> None:
    """Raises NotFoundError naming the work order when there is none: a missing work order
    is what is wrong then, not the job asked for (``fulmen runs rerun X --from-job J``)."""
    if await tx.fetchone("get_work_order", {"id": work_order_id}) is None:
        raise NotFoundError(f"work order {work_order_id} does not exist", field="work_order_id")


def _from_start(first: Row) -> tuple[str, str, str | None, str]:
    return first["work_order_id"], first["starting_node_id"], first["dataclip_id"], first["id"]
