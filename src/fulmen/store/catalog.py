"""Projects and workflows: what runs are made from.

A workflow is saved whole. Each save writes the current jobs, triggers and edges (kept as rows
for lookups: a webhook finds its trigger, a credential knows who uses it) and an immutable
snapshot of the whole document, which the runs enqueued afterwards record and run. Saves are
optimistic: a replace names the version it was based on and is refused if another save came
first (issue 8, "Workflow versions").

A save that puts or lifts a concurrency limit also rewrites the ``limited`` flag of the
available runs it governs (the claim reads rationed runs from their own index), under a row
lock that enqueues respect (queries.sql: lock_enqueue_limits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import uuid4

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.plan import Edge, Job, Plan, Trigger, language_of, validate
from fulmen.store import keychains, retention_policy, retry_policy
from fulmen.store.batches import BATCH_BYTES, BATCH_ROWS
from fulmen.store.db import Row, Tx, dumps, loads
from fulmen.store.models.catalog import (
    CronCursor,
    Project,
    RetentionPolicy,
    RetryPolicy,
    Snapshot,
    StoredWorkflow,
    TriggerInfo,
    TriggerType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
)
from fulmen.store.models.common import Page
from fulmen.store.paging import check_limit, decode_cursor, make_page
from fulmen.store.sources import check_adaptors, check_packages, check_sources

__all__ = [
    "check_workflow",
    "create_project",
    "create_workflow",
    "delete_project",
    "delete_project_history",
    "delete_workflow",
    "delete_workflow_history",
    "get_project",
    "get_snapshot",
    "get_trigger",
    "get_workflow",
    "job_from_document",
    "list_projects",
    "list_workflows",
    "project_of",
    "replace_project",
    "replace_workflow",
    "workflow_from_document",
]


# -- projects ----------------------------------------------------------------------------


async def create_project(tx: Tx, project: Project, now: datetime) -> Project:
    _check_concurrency(project.concurrency)
    retention_policy.check_project(project)
    if await tx.fetchone("get_project", {"id": project.id}) is not None:
        raise ConflictError(f"project {project.id} already exists", field="id")
    row = await tx.fetchone("insert_project", _project_params(project, now))
    assert row is not None  # RETURNING
    return _project(tx, row)


async def replace_project(tx: Tx, project: Project, now: datetime) -> Project:
    _check_concurrency(project.concurrency)
    retention_policy.check_project(project)
    before = await tx.fetchone("lock_project", {"id": project.id})
    if before is None:
        raise NotFoundError(f"project {project.id} does not exist", field="id")
    row = await tx.fetchone("update_project", _project_params(project, now))
    assert row is not None  # locked above
    if (before["concurrency"] is None) != (project.concurrency is None):
        await tx.execute(
            "set_project_runs_limited",
            {"id": project.id, "project_limited": project.concurrency is not None},
        )
    return _project(tx, row)


async def get_project(tx: Tx, project_id: str) -> Project:
    row = await tx.fetchone("get_project", {"id": project_id})
    if row is None:
        raise NotFoundError(f"project {project_id} does not exist", field="id")
    return _project(tx, row)


async def list_projects(
    tx: Tx, cursor: str | None, limit: int, ids: Collection[str] | None = None
) -> Page[Project]:
    """A page of projects in id order; only those of ``ids`` when given (a user's)."""
    after = decode_cursor(cursor, str)[0] if cursor else None
    wanted = None if ids is None else sorted(ids)
    params = {"after": after, "ids": wanted, "limit": check_limit(limit) + 1}
    rows = await tx.fetchall("list_projects", params)
    return make_page([_project(tx, row) for row in rows], limit, lambda p: (p.id,))


async def delete_project_history(tx: Tx, project_id: str) -> int:
    """A batch of a project's deletion, before :func:`delete_project`: some of its work
    orders (with their runs, steps and logs) or, once those are gone, of its dataclips; how
    many rows went. Bounded (store/batches.py): call again until it deletes none."""
    params = {"project_id": project_id, "limit": BATCH_ROWS, "max_bytes": BATCH_BYTES}
    if gone := await tx.execute("delete_project_work_orders", params):
        return gone
    return await tx.execute("delete_project_dataclips", params)


async def delete_project(tx: Tx, project_id: str) -> None:
    await tx.execute("delete_project_workflows", {"id": project_id})
    await tx.execute("delete_project_keychains", {"id": project_id})
    if not await tx.execute("delete_project", {"id": project_id}):
        raise NotFoundError(f"project {project_id} does not exist", field="id")


def _project_params(project: Project, now: datetime) -> dict[str, object]:
    return {
        "id": project.id,
        "name": project.name,
        "concurrency": project.concurrency,
        "history_retention_period": project.history_retention_period,
        "dataclip_retention_period": project.dataclip_retention_period,
        "retention_policy": RetentionPolicy(project.retention_policy),
        "viewers_see_bodies": project.viewers_see_bodies,
        "now": now,
    }


def project_of(tx: Tx, row: Row) -> Project:
    """A ``projects`` row as a Project."""
    return _project(tx, row)


def _project(tx: Tx, row: Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        concurrency=row["concurrency"],
        history_retention_period=row["history_retention_period"],
        dataclip_retention_period=row["dataclip_retention_period"],
        retention_policy=RetentionPolicy(row["retention_policy"]),
        viewers_see_bodies=bool(row["viewers_see_bodies"]),
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )


# -- workflows ---------------------------------------------------------------------------


async def create_workflow(tx: Tx, workflow: Workflow, now: datetime) -> StoredWorkflow:
    check_workflow(workflow)
    await get_project(tx, workflow.project_id)
    if await tx.fetchone("get_workflow", {"id": workflow.id}) is not None:
        raise ConflictError(f"workflow {workflow.id} already exists", field="id")
    await tx.execute("insert_workflow", _workflow_params(workflow, now, None))
    await _save_nodes(tx, workflow, version=1, now=now)
    return await get_workflow(tx, workflow.id)


async def replace_workflow(
    tx: Tx, workflow: Workflow, expected_version: int | None, now: datetime
) -> StoredWorkflow:
    check_workflow(workflow)
    before = await tx.fetchone("lock_workflow", {"id": workflow.id})
    row = await tx.fetchone("update_workflow", _workflow_params(workflow, now, expected_version))
    if row is None:
        current = await get_workflow(tx, workflow.id)
        if current.workflow.project_id != workflow.project_id:
            raise ConflictError(
                f"workflow {workflow.id} belongs to project {current.workflow.project_id}; "
                "a workflow cannot move to another project",
                field="project_id",
            )
        raise ConflictError(
            f"workflow {workflow.id} was saved by someone else: it is at version "
            f"{current.version}, this save was based on version {expected_version}",
            field="lock_version",
            code="stale_version",
        )
    await _save_nodes(tx, workflow, version=row["lock_version"], now=now)
    assert before is not None  # the update found it
    if (before["concurrency"] is None) != (workflow.concurrency is None):
        # Locked, so that a save of the project's limit cannot rewrite the flags meanwhile.
        project = await tx.fetchone("lock_project", {"id": workflow.project_id})
        assert project is not None  # the workflow's project
        limited = workflow.concurrency is not None or project["concurrency"] is not None
        await tx.execute(
            "set_workflow_runs_limited", {"workflow_id": workflow.id, "limited": limited}
        )
    return await get_workflow(tx, workflow.id)


async def get_workflow(tx: Tx, workflow_id: str) -> StoredWorkflow:
    row = await tx.fetchone("get_workflow", {"id": workflow_id})
    if row is None:
        raise NotFoundError(f"workflow {workflow_id} does not exist", field="id")
    return _stored_workflow(tx, row)


async def list_workflows(
    tx: Tx, project_id: str, cursor: str | None, limit: int
) -> Page[StoredWorkflow]:
    after = decode_cursor(cursor, str)[0] if cursor else None
    params = {"project_id": project_id, "after": after, "limit": check_limit(limit) + 1}
    rows = await tx.fetchall("list_workflows", params)
    items = [_stored_workflow(tx, row) for row in rows]
    return make_page(items, limit, lambda w: (w.workflow.id,))


async def delete_workflow_history(tx: Tx, workflow_id: str) -> int:
    """A batch of a workflow's deletion, before :func:`delete_workflow`: some of its work
    orders, with their runs, steps and logs; how many. Call again until it deletes none."""
    params = {"workflow_id": workflow_id, "limit": BATCH_ROWS, "max_bytes": BATCH_BYTES}
    return await tx.execute("delete_workflow_work_orders", params)


async def delete_workflow(tx: Tx, workflow_id: str) -> None:
    if not await tx.execute("delete_workflow", {"id": workflow_id}):
        raise NotFoundError(f"workflow {workflow_id} does not exist", field="id")


async def get_snapshot(tx: Tx, snapshot_id: str) -> Snapshot:
    row = await tx.fetchone("get_snapshot", {"id": snapshot_id})
    if row is None:
        raise NotFoundError(f"snapshot {snapshot_id} does not exist", field="id")
    return Snapshot(
        id=row["id"],
        workflow_id=row["workflow_id"],
        version=row["version"],
        workflow=workflow_from_document(loads(row["document"])),
        inserted_at=tx.time(row["inserted_at"]),
    )


async def get_trigger(tx: Tx, trigger_id: str) -> TriggerInfo:
    row = await tx.fetchone("get_trigger", {"id": trigger_id})
    if row is None:
        raise NotFoundError(f"trigger {trigger_id} does not exist", field="id")
    trigger = _trigger({**row, "enabled": bool(row["enabled"])})
    return TriggerInfo(
        trigger,
        workflow_id=row["workflow_id"],
        project_id=row["project_id"],
        has_auth=bool(row["has_auth"]),
    )


async def _save_nodes(tx: Tx, workflow: Workflow, *, version: int, now: datetime) -> None:
    """Write the workflow's jobs, triggers and edges as they now are, and its snapshot."""
    ids = {
        "workflow_id": workflow.id,
        "job_ids": [job.id for job in workflow.jobs],
        "trigger_ids": [trigger.id for trigger in workflow.triggers],
        "edge_ids": [edge.id for edge in workflow.edges],
    }
    taken = [row["id"] for row in await tx.fetchall("foreign_nodes", ids)]
    if taken:
        raise ConflictError(
            f"another workflow already has a job, trigger or edge with the id {taken[0]}",
            field="id",
        )
    wanted = sorted({job.credential_id for job in workflow.jobs if job.credential_id})
    found = {
        row["id"]
        for row in await tx.fetchall(
            "project_credentials", {"project_id": workflow.project_id, "ids": wanted}
        )
    }
    missing = [credential for credential in wanted if credential not in found]
    if missing:
        raise NotFoundError(
            f"credential {missing[0]} is not a credential of project {workflow.project_id}",
            field="credential_id",
        )
    await keychains.check_project_keychains(
        tx, workflow.project_id, [job.keychain_id for job in workflow.jobs if job.keychain_id]
    )
    for query in ("delete_stale_edges", "delete_stale_jobs", "delete_stale_triggers"):
        await tx.execute(query, ids)
    base = {"workflow_id": workflow.id, "project_id": workflow.project_id}
    for job in workflow.jobs:
        await tx.execute("upsert_job", {**base, **_job_document(job)})
    for trigger in workflow.triggers:
        await tx.execute("upsert_trigger", {**base, **_trigger_document(trigger)})
    for edge in workflow.edges:
        await tx.execute("upsert_edge", {**base, **edge.to_wire()})
    await tx.execute(
        "insert_snapshot",
        {
            "id": str(uuid4()),
            "workflow_id": workflow.id,
            "version": version,
            "document": dumps(workflow_document(workflow)),
            "now": now,
        },
    )


def check_workflow(workflow: Workflow) -> None:
    """Refuse what cannot be saved: the plan rules of §6.3 plus the store's own, among them
    sources that parse in their language, and packages at exact versions (sources.py). Every
    save runs it; a deployment also runs it on each workflow before it writes anything."""
    _check_concurrency(workflow.concurrency)
    for job in workflow.jobs:
        if job.credential is not None or job.state is not None:
            raise InputError(
                f"job {job.id}: inline credentials and default states are not stored; "
                "save the secret as a credential and name it with credential_id"
            )
        if job.credential_id and job.keychain_id:
            raise InputError(
                f"job {job.id}: name a credential or a keychain, not both",
                field="keychain_id",
            )
    retry_policy.check_policy(workflow.retry)
    job_ids = {job.id for job in workflow.jobs}
    for trigger in workflow.triggers:
        if trigger.type is TriggerType.CRON and not trigger.cron_expression:
            raise InputError(f"trigger {trigger.id}: a cron trigger needs a cron_expression")
        _check_cursor(trigger, job_ids)
    edge_ids = Counter(edge.id for edge in workflow.edges)
    twice = [edge_id for edge_id, count in edge_ids.items() if count > 1]
    if twice:
        raise InputError(f"two edges share the id {twice[0]!r}")
    validate(
        Plan(
            id=workflow.id,
            jobs=workflow.jobs,
            triggers=tuple(Trigger(id=t.id) for t in workflow.triggers),
            edges=workflow.edges,
        )
    )
    check_sources(workflow)
    check_packages(workflow.jobs)
    check_adaptors(workflow)


def _check_cursor(trigger: WorkflowTrigger, job_ids: set[str]) -> None:
    cursor = CronCursor(trigger.cron_cursor)
    if cursor is not CronCursor.NONE and trigger.type is not TriggerType.CRON:
        raise InputError(f"trigger {trigger.id}: only a cron trigger has a cron_cursor")
    if cursor is CronCursor.JOB and trigger.cron_cursor_job_id not in job_ids:
        raise InputError(
            f"trigger {trigger.id}: a 'job' cron_cursor names one of the workflow's jobs in "
            f"cron_cursor_job_id, not {trigger.cron_cursor_job_id!r}"
        )
    if cursor is not CronCursor.JOB and trigger.cron_cursor_job_id is not None:
        raise InputError(f"trigger {trigger.id}: cron_cursor_job_id goes with cron_cursor 'job'")


def _check_concurrency(concurrency: int | None) -> None:
    if concurrency is not None and (isinstance(concurrency, bool) or concurrency < 1):
        raise InputError(f"concurrency must be a positive number or none, not {concurrency!r}")


def _workflow_params(
    workflow: Workflow, now: datetime, expected_version: int | None
) -> dict[str, object]:
    return {
        "id": workflow.id,
        "project_id": workflow.project_id,
        "name": workflow.name,
        "concurrency": workflow.concurrency,
        "max_retries": workflow.retry.max_retries,
        "retry_backoff_ms": workflow.retry.backoff_ms,
        "retry_backoff_max_ms": workflow.retry.backoff_max_ms,
        "retry_on_fail": workflow.retry.on_fail,
        "expected_version": expected_version,
        "now": now,
    }


def _stored_workflow(tx: Tx, row: Row) -> StoredWorkflow:
    return StoredWorkflow(
        workflow=workflow_from_document(loads(row["document"])),
        version=row["lock_version"],
        snapshot_id=row["snapshot_id"],
        inserted_at=tx.time(row["inserted_at"]),
        updated_at=tx.time(row["updated_at"]),
    )


# -- the workflow document (what a snapshot holds) ---------------------------------------


def workflow_document(workflow: Workflow) -> dict[str, object]:
    return {
        "id": workflow.id,
        "project_id": workflow.project_id,
        "name": workflow.name,
        "concurrency": workflow.concurrency,
        "retry": _retry_document(workflow.retry),
        "jobs": [_job_document(job) for job in workflow.jobs],
        "triggers": [_trigger_document(trigger) for trigger in workflow.triggers],
        "edges": [edge.to_wire() for edge in workflow.edges],
    }


def workflow_from_document(doc: Mapping[str, Any]) -> Workflow:
    return Workflow(
        id=doc["id"],
        project_id=doc["project_id"],
        name=doc["name"],
        concurrency=doc.get("concurrency"),
        retry=RetryPolicy(**doc.get("retry", {})),
        jobs=tuple(job_from_document(job) for job in doc["jobs"]),
        triggers=tuple(_trigger(trigger) for trigger in doc["triggers"]),
        edges=tuple(Edge(**edge) for edge in doc["edges"]),
    )


def _retry_document(retry: RetryPolicy) -> dict[str, object]:
    return {
        "max_retries": retry.max_retries,
        "backoff_ms": retry.backoff_ms,
        "backoff_max_ms": retry.backoff_max_ms,
        "on_fail": retry.on_fail,
    }


def _job_document(job: Job) -> dict[str, object]:
    """A job as a row and a snapshot hold it: its language always said (issue 15), and its
    requirements, exact (issue 16; a list, empty for most jobs)."""
    return {
        "id": job.id,
        "name": job.name,
        "body": job.body,
        "adaptor": job.adaptor,
        "credential_id": job.credential_id,
        "keychain_id": job.keychain_id,
        "language": job.runs_in,
        "requirements": list(job.requirements),
    }


def job_from_document(doc: Mapping[str, Any]) -> Job:
    """A snapshot's job, its language said: every document carries it since schema 0008,
    which gave the older ones ``python``; the adaptor's default is for a document that
    somehow has none. A document saved before issue 16 has no requirements: none."""
    job = Job(**{**doc, "requirements": tuple(doc.get("requirements") or ())})
    return job if job.language is not None else replace(job, language=language_of(job.adaptor))


def _trigger_document(trigger: WorkflowTrigger) -> dict[str, object]:
    return {
        "id": trigger.id,
        "type": trigger.type.value,
        "enabled": trigger.enabled,
        "cron_expression": trigger.cron_expression,
        "timezone": trigger.timezone,
        "webhook_reply": trigger.webhook_reply.value if trigger.webhook_reply else None,
        "cron_cursor": CronCursor(trigger.cron_cursor).value,
        "cron_cursor_job_id": trigger.cron_cursor_job_id,
    }


def _trigger(doc: Mapping[str, Any]) -> WorkflowTrigger:
    reply = doc.get("webhook_reply")
    return WorkflowTrigger(
        id=doc["id"],
        type=TriggerType(doc["type"]),
        enabled=bool(doc["enabled"]),
        cron_expression=doc.get("cron_expression"),
        timezone=doc.get("timezone"),
        webhook_reply=WebhookReply(reply) if reply else None,
        cron_cursor=CronCursor(doc.get("cron_cursor") or CronCursor.NONE),
        cron_cursor_job_id=doc.get("cron_cursor_job_id"),
    )
