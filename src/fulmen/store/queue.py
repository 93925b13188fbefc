"""The run queue: enqueue, claim, and the sweeps that keep runs from hanging in flight.

The claim itself is one SQL statement per dialect (``claim_runs`` in each queries.sql, whose
comments explain the order, the locking and the concurrency limits), preceded, while runs
under a limit wait, by ``claim_lock_limits``, which makes claimers of those runs take turns
(PostgreSQL; SQLite's write lock already does). The rollback and lost-run sweeps are set-wise
updates whose ``WHERE state …`` says what ``fulmen.lifecycle.run_sources`` says for their
event; a lost run may be retried (fulmen.store.endings), in the sweep's transaction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from fulmen.errors import ContractError, InputError, NotFoundError
from fulmen.lifecycle import RunState
from fulmen.plan import LANGUAGES, Options, Plan, runnable_masks
from fulmen.store import snapshots
from fulmen.store.dataclips import insert_dataclip
from fulmen.store.db import Row, Tx
from fulmen.store.endings import after_end
from fulmen.store.events import append_logs
from fulmen.store.models.queue import (
    ClaimedRun,
    Enqueued,
    EnqueueRequest,
    LostRun,
    Priority,
    UnjoinedClaim,
)
from fulmen.store.models.runs import LogLine
from fulmen.store.newruns import NewRun, insert_run

__all__ = [
    "claim",
    "encode_options",
    "enqueue",
    "mark_lost",
    "queue_depth",
    "return_refused",
    "rollback_claims",
    "rollback_unjoined",
    "run_counts",
    "run_endings",
]

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
#: The run_timeout_ms column is a 32-bit integer on PostgreSQL (about 24 days).
MAX_TIMEOUT_MS = 2**31 - 1
ANY_QUEUE = "*"


async def enqueue(tx: Tx, request: EnqueueRequest, now: datetime) -> Enqueued:
    """Write the input dataclip (if new), the work order (if new) and the run, in ``tx``."""
    workflow = await tx.fetchone("get_workflow", {"id": request.workflow_id})
    if workflow is None:
        raise NotFoundError(f"workflow {request.workflow_id} does not exist", field="workflow_id")
    project_id: str = workflow["project_id"]
    snapshot = snapshots.parsed(workflow["snapshot_id"], workflow["document"])
    document = snapshot.document
    start = _starting_node(request, document)
    queue = _queue_name(request.queue)
    priority = _priority(request.priority)
    _check_options(request.options)
    if request.input is not None and request.input_dataclip_id is not None:
        raise InputError("give a new input or an existing dataclip id, not both")

    dataclip_id = request.input_dataclip_id
    if dataclip_id is not None:
        await _check_dataclip(tx, dataclip_id, project_id)
    work_order_id = request.work_order_id
    if work_order_id is not None:
        await _check_work_order(tx, work_order_id, request.workflow_id)

    if request.input is not None:
        dataclip_id = await insert_dataclip(tx, project_id, request.input, now)
    if work_order_id is None:
        work_order_id = str(uuid4())
        await tx.execute(
            "insert_work_order",
            {
                "id": work_order_id,
                "workflow_id": request.workflow_id,
                "trigger_id": request.trigger_id,
                "dataclip_id": dataclip_id,
                "now": now,
            },
        )
    run_id = request.run_id or str(uuid4())
    await insert_run(
        tx,
        NewRun(
            id=run_id,
            work_order_id=work_order_id,
            workflow_id=request.workflow_id,
            project_id=project_id,
            snapshot_id=workflow["snapshot_id"],
            dataclip_id=dataclip_id,
            starting_node_id=start,
            queue=queue,
            priority=priority,
            options=request.options,
            languages=snapshot.languages,
            jobs=snapshot.job_documents,
        ),
        now,
    )
    return Enqueued(
        work_order_id=work_order_id,
        run_id=run_id,
        dataclip_id=dataclip_id,
        workflow_id=request.workflow_id,
        project_id=project_id,
    )


async def claim(
    tx: Tx,
    demand: int,
    queues: Sequence[str],
    worker_name: str | None,
    now: datetime,
    *,
    join: bool = False,
    languages: Sequence[str] = LANGUAGES,
) -> list[ClaimedRun]:
    """Claim up to ``demand`` runs from ``queues`` (spec §4.4), best first, of those whose
    every job is in one of ``languages`` (those the worker runs); with ``join``, joined too
    (``joined_by_claim``: a claim that fetched, ``CLAIM_FETCHES``)."""
    if isinstance(demand, bool) or not isinstance(demand, int) or demand < 1:
        raise InputError(f"demand must be a positive number, not {demand!r}")
    wanted = _queue_list(queues)
    masks = runnable_masks(languages)
    if not wanted or not masks:
        return []
    params: dict[str, object] = {
        "queues": wanted,
        "languages": masks,
        "demand": demand,
        "worker_name": worker_name or None,
        "now": now,
        "joined_at": now if join else None,
        "by_claim": join,
    }
    if await tx.fetchone("claim_lock_limits") is None:  # no run under a limit waits
        rows = await tx.fetchall("claim_open_runs", params)
    else:
        rows = await tx.fetchall("claim_runs", params)

    def rank(row: Row) -> tuple[int, int, int]:
        queue = row["queue"] if row["queue"] in wanted else ANY_QUEUE
        return (wanted.index(queue), row["priority"], row["seq"])

    return [_claimed(tx, row) for row in sorted(rows, key=rank)]


async def rollback_claims(tx: Tx, run_ids: Sequence[str]) -> list[str]:
    rows = await tx.fetchall("rollback_runs", {"ids": list(run_ids)})
    return sorted(row["id"] for row in rows)


async def rollback_unjoined(
    tx: Tx,
    claimed_before: datetime,
    note: Callable[[UnjoinedClaim], LogLine] | None = None,
) -> list[str]:
    """Roll back claims never joined since before ``claimed_before``; with ``note``, each run
    rolled back gets that line in its log, in the same transaction."""
    rows = await tx.fetchall("unjoined_claims", {"claimed_before": claimed_before})
    if not rows:
        return []
    back = await rollback_claims(tx, [row["id"] for row in rows])
    if note is not None:
        for row in rows:
            if row["id"] in back:
                claim = UnjoinedClaim(row["id"], row["worker_name"], tx.time(row["claimed_at"]))
                await append_logs(tx, claim.run_id, [note(claim)])
    return back


async def return_refused(tx: Tx, run_id: str, claimed_before: datetime, note: LogLine) -> bool:
    """Issue 14: a refused claim goes back to the queue, with ``note`` in the run's log."""
    params = {"id": run_id, "claimed_before": claimed_before}
    if await tx.fetchone("return_refused", params) is None:
        return False
    await append_logs(tx, run_id, [note])
    return True


async def mark_lost(
    tx: Tx, now: datetime, grace: timedelta, default_timeout_ms: int
) -> list[LostRun]:
    """Spec §7.5: runs past ``COALESCE(started_at, claimed_at) + timeout + grace`` are lost."""
    grace_ms = grace // timedelta(milliseconds=1)
    if grace_ms < 0 or default_timeout_ms < 1:
        raise InputError("the grace period cannot be negative, nor the default timeout zero")
    rows = await tx.fetchall(
        "lose_runs",
        {"now": now, "grace_ms": grace_ms, "default_timeout_ms": default_timeout_ms},
    )
    rows = sorted(rows, key=lambda row: str(row["id"]))
    lost = [LostRun(row["id"], row["error_type"]) for row in rows]
    if lost:
        await tx.execute("lose_steps", {"run_ids": [run.id for run in lost], "now": now})
    for row in rows:
        await after_end(tx, row, RunState.LOST, now)
    return lost


async def queue_depth(tx: Tx, now: datetime) -> dict[str, int]:
    rows = await tx.fetchall("queue_depth", {"now": now})
    return {row["queue"]: int(row["depth"]) for row in rows}


async def run_counts(tx: Tx) -> dict[str, int]:
    return {row["state"]: int(row["count"]) for row in await tx.fetchall("run_counts")}


async def run_endings(tx: Tx) -> dict[str, int]:
    return {row["state"]: int(row["count"]) for row in await tx.fetchall("run_endings")}


def encode_options(options: Options) -> dict[str, object]:
    """The options as the plan carries them, checked by the plan's own decoder."""
    doc = options.to_wire()
    if (options.run_timeout_ms or 0) > MAX_TIMEOUT_MS:
        raise InputError(f"run options: run_timeout_ms is at most {MAX_TIMEOUT_MS}")
    try:
        Plan.from_wire({"id": "options", "options": doc})
    except ContractError as error:
        raise InputError(f"run options: {error}") from error
    return doc


def _check_options(options: Options) -> None:
    """:func:`encode_options`'s check, once per distinct options: nearly every run is made
    with its coordinator's own, and checking them again cost every enqueue a plan decode.
    A refusal is not remembered (``lru_cache`` keeps no exception): it is raised every time."""
    try:
        _checked_options(options)
    except TypeError:  # a field of a type Options does not hold (unhashable): checked as is
        encode_options(options)


@functools.lru_cache(maxsize=64)
def _checked_options(options: Options) -> None:
    encode_options(options)


def _starting_node(request: EnqueueRequest, document: Mapping[str, Any]) -> str:
    triggers = [trigger["id"] for trigger in document["triggers"]]
    jobs = [job["id"] for job in document["jobs"]]
    if request.trigger_id is not None and request.trigger_id not in triggers:
        raise NotFoundError(
            f"trigger {request.trigger_id} is not a trigger of workflow {request.workflow_id}",
            field="trigger_id",
        )
    start = request.starting_node_id or request.trigger_id or next(iter(triggers + jobs), None)
    if start is None or start not in triggers + jobs:
        raise NotFoundError(
            f"the starting node {start!r} is not a trigger or job of workflow "
            f"{request.workflow_id}",
            field="starting_node_id",
        )
    return start


async def _check_dataclip(tx: Tx, dataclip_id: str, project_id: str) -> None:
    row = await tx.fetchone("dataclip_project", {"id": dataclip_id})
    if row is None or row["project_id"] != project_id:
        raise NotFoundError(
            f"dataclip {dataclip_id} is not a dataclip of project {project_id}",
            field="dataclip_id",
        )


async def _check_work_order(tx: Tx, work_order_id: str, workflow_id: str) -> None:
    row = await tx.fetchone("get_work_order", {"id": work_order_id})
    if row is None or row["workflow_id"] != workflow_id:
        raise NotFoundError(
            f"work order {work_order_id} is not a work order of workflow {workflow_id}",
            field="work_order_id",
        )


def _queue_name(name: str) -> str:
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise InputError(f"a queue name is letters, digits and _, not {name!r}")
    return name


def _queue_list(queues: Sequence[str]) -> list[str]:
    """The claim's queues, checked, without repeats (the first place of a name counts)."""
    if isinstance(queues, str):
        raise InputError("queues is a list of queue names, not one string")
    wanted: list[str] = []
    for name in queues:
        if name != ANY_QUEUE:
            _queue_name(name)
        if name not in wanted:
            wanted.append(name)
    return wanted


def _priority(priority: int) -> Priority:
    try:
        return Priority(priority)
    except ValueError:
        raise InputError(f"priority is 0 (immediate) or 1 (normal), not {priority!r}") from None


def _claimed(tx: Tx, row: Row) -> ClaimedRun:
    return ClaimedRun(
        id=row["id"],
        workflow_id=row["workflow_id"],
        project_id=row["project_id"],
        queue=row["queue"],
        priority=Priority(row["priority"]),
        run_timeout_ms=row["run_timeout_ms"],
        claimed_at=tx.time(row["claimed_at"]),
        dataclip_id=row["dataclip_id"],
    )
