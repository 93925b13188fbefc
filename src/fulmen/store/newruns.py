"""Writing a new run row: the one place every kind of run is made (trigger, manual, retry,
rerun), so that each gets the same copies of its workflow's and project's settings.

Two settings are copied into the run when it is made:

* ``limited``: whether a concurrency limit (the workflow's or its project's) rations it; the
  claim reads rationed runs from their own index. Read under a key-share lock that a save
  changing a limit must wait for (queries.sql: lock_enqueue_limits), so the copy is never
  stale.
* the plan option ``output_dataclips``: off in an ``erase_all`` project, so the worker does
  not even send outputs (issue 8, "Retention and privacy").

Each keychain its jobs name chooses a credential for it (store/keychains.py), from the input
it is made with; a run whose keychain chooses none is made failed (an ending the workflow's
alert rule may ask for) and never queued.

And one of its workflow version: ``languages``, the job languages it needs (a bit set,
``fulmen.plan.LANGUAGE_BITS``), which the claim matches against those the worker runs.
:func:`languages_of` reads them off a workflow document; a retry copies its run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulmen.plan import PYTHON, Options, language_mask, language_of
from fulmen.store import alert_outbox, keychains
from fulmen.store.db import Tx, dumps, loads
from fulmen.store.models.catalog import RetentionPolicy
from fulmen.store.models.queue import Priority, Queue

__all__ = ["NewRun", "insert_run", "languages_of"]


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    work_order_id: str
    workflow_id: str
    project_id: str
    snapshot_id: str
    dataclip_id: str | None
    starting_node_id: str
    queue: str
    priority: Priority
    #: Already checked (queue.encode_options).
    options: Options
    attempt: int = 1
    retry_of: str | None = None
    rerun_of: str | None = None
    not_before: datetime | None = None
    #: The job languages the run needs (``languages_of``); Python alone by default.
    languages: int = 1
    #: The snapshot's jobs, when the caller has read its document (a new run and a rerun
    #: have; a retry has not, and they are read here): their keychains choose credentials.
    jobs: Sequence[Mapping[str, Any]] | None = None


#: The queues the first schema file made in every database; no queue is ever deleted, so
#: only another name needs its row made (the claim expands ``*`` to the rows of ``queues``).
_BUILT_IN: frozenset[str] = frozenset(queue.value for queue in Queue)


def languages_of(document: Mapping[str, Any]) -> int:
    """The languages of a workflow document's jobs, as a bit set (Python when it has none)."""
    jobs = document.get("jobs") or []
    names = [
        language_of(str(job.get("adaptor") or ""), job.get("language"))
        for job in jobs
        if isinstance(job, Mapping)
    ]
    return language_mask(names) or language_mask([PYTHON])


async def insert_run(tx: Tx, run: NewRun, now: datetime) -> None:
    """Write ``run`` as ``available``, with its copies of the workflow's settings."""
    limits = await tx.fetchone("lock_enqueue_limits", {"id": run.workflow_id})
    assert limits is not None  # the caller read the workflow in this transaction
    limited = limits["workflow_limit"] is not None or limits["project_limit"] is not None
    options = run.options
    if RetentionPolicy(limits["retention_policy"]) is RetentionPolicy.ERASE_ALL:
        options = dataclasses.replace(options, output_dataclips=False)
    document = options.to_wire()
    if run.queue not in _BUILT_IN:
        await tx.execute("add_queue", {"name": run.queue})
    await tx.execute(
        "insert_run",
        {
            "id": run.id,
            "work_order_id": run.work_order_id,
            "workflow_id": run.workflow_id,
            "project_id": run.project_id,
            "snapshot_id": run.snapshot_id,
            "dataclip_id": run.dataclip_id,
            "starting_node_id": run.starting_node_id,
            "queue": run.queue,
            "priority": run.priority,
            "options": dumps(document),
            "run_timeout_ms": options.run_timeout_ms,
            "attempt": run.attempt,
            "retry_of": run.retry_of,
            "rerun_of": run.rerun_of,
            "not_before": run.not_before,
            "limited": limited,
            "languages": run.languages,
            "now": now,
        },
    )
    jobs = run.jobs
    if jobs is None:
        snapshot = await tx.fetchone("get_snapshot", {"id": run.snapshot_id})
        assert snapshot is not None  # the caller read the workflow (or run) naming it
        jobs = loads(snapshot["document"])["jobs"]
    if await keychains.choose_for_run(tx, run.id, run.project_id, jobs, run.dataclip_id, now):
        await alert_outbox.note_ending(tx, run.id, now)  # an end, for the workflow's alerts
