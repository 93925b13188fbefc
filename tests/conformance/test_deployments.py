"""``Store.deploy`` (issue 21), on SQLite and PostgreSQL: a project, its credentials and its
workflows written in one transaction with their audit records, or nothing at all: a refusal
of the last part takes back the project, the credentials and the workflows written before
it, and names the part at fault."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.plan import PYTHON, Edge, Job
from fulmen.store import (
    Actor,
    Deployed,
    Deployment,
    NewAuditRecord,
    NewCredential,
    Project,
    SQLStore,
    Target,
    Workflow,
    WorkflowSave,
    WorkflowTrigger,
)

from .test_store import seed, workflow

pytestmark = pytest.mark.anyio

BY = Actor("user", "u1", "ada@example.org")


def a_workflow(workflow_id: str, project_id: str, *, credential_id: str | None = None) -> Workflow:
    """A new workflow of its own ids: webhook -> one job."""
    job, trigger = f"{workflow_id}-j", f"{workflow_id}-t"
    return Workflow(
        id=workflow_id,
        project_id=project_id,
        name=f"named {workflow_id}",
        jobs=(Job(job, "fn(lambda s: s)", "common", credential_id=credential_id, language=PYTHON),),
        triggers=(WorkflowTrigger(id=trigger),),
        edges=(Edge(id=f"{workflow_id}-e", target_job_id=job, source_trigger_id=trigger),),
    )


def verb(before: object, after: object) -> str:
    return "created" if before is None else "deleted" if after is None else "updated"


def records(done: Deployed) -> Sequence[NewAuditRecord]:
    """One record per change, as the coordinator's would be (coordinator/audit.py)."""
    made = []
    if done.project is not None and done.project.after is not None:
        project = done.project.after
        action = f"project.{verb(done.project.before, project)}"
        made.append(NewAuditRecord(BY, action, Target("project", project.id), project.id))
    for credential in done.credentials:
        assert credential.after is not None
        target = Target("credential", credential.after.id, credential.after.name)
        made.append(NewAuditRecord(BY, "credential.created", target, credential.after.project_id))
    for change in done.workflows:
        shown = change.after or change.before
        assert shown is not None
        target = Target("workflow", shown.workflow.id, shown.workflow.name)
        action = f"workflow.{verb(change.before, change.after)}"
        made.append(NewAuditRecord(BY, action, target, shown.workflow.project_id))
    return made


async def actions(store: SQLStore) -> list[str]:
    """The audit trail's actions, oldest first."""
    return [record.action for record in reversed((await store.list_audit(limit=500)).items)]


async def test_a_deployment_writes_everything_with_its_records(store: SQLStore) -> None:
    await seed(store)
    await store.create_workflow(a_workflow("gone", "p"))
    done = await store.deploy(
        Deployment(
            project=Project("p", "Clinic (renamed)", concurrency=3),
            credentials=(NewCredential("c2", "p", "sms", {}),),
            workflows=(
                WorkflowSave(a_workflow("new", "p", credential_id="c2"), new=True),
                WorkflowSave(workflow(name="sync, again"), new=False, expected_version=1),
            ),
            deletions=("gone",),
        ),
        record=records,
    )
    assert done.project is not None and done.project.before is not None
    assert (done.project.before.name, done.project.after and done.project.after.name) == (
        "Clinic",
        "Clinic (renamed)",
    )
    assert [c.after and c.after.name for c in done.credentials] == ["sms"]
    versions = [
        (c.before and c.before.version, c.after and c.after.version) for c in done.workflows
    ]
    assert versions == [(None, 1), (1, 2), (1, None)]
    assert (await store.get_project("p")).concurrency == 3
    assert (await store.get_workflow("w")).workflow.name == "sync, again"
    assert (await store.get_workflow("new")).workflow.jobs[0].credential_id == "c2"
    with pytest.raises(NotFoundError):
        await store.get_workflow("gone")
    assert await actions(store) == [
        "project.updated",
        "credential.created",
        "workflow.created",
        "workflow.updated",
        "workflow.deleted",
    ]


async def test_a_stale_last_workflow_takes_back_everything_before_it(store: SQLStore) -> None:
    await seed(store)
    await store.replace_workflow(workflow(name="saved meanwhile"), expected_version=1)
    with pytest.raises(ConflictError) as refused:
        await store.deploy(
            Deployment(
                project=Project("p", "Clinic (renamed)"),
                credentials=(NewCredential("c2", "p", "sms", {}),),
                workflows=(
                    WorkflowSave(a_workflow("first", "p"), new=True),
                    WorkflowSave(workflow(name="mine"), new=False, expected_version=1),
                ),
            ),
            record=records,
        )
    assert refused.value.code == "stale_version"
    assert refused.value.field == "workflows[1].lock_version"
    assert refused.value.message.startswith("workflow 'mine': workflow w was saved by someone")
    assert (await store.get_project("p")).name == "Clinic"
    assert [c.id for c in await store.list_credentials("p")] == ["c"]
    assert [w.workflow.id for w in (await store.list_workflows("p")).items] == ["w"]
    assert (await store.get_workflow("w")).workflow.name == "saved meanwhile"
    assert await actions(store) == []


async def test_a_new_project_is_not_kept_when_its_last_workflow_is_refused(
    store: SQLStore,
) -> None:
    await seed(store)  # project p's workflow w has the id the last workflow asks for
    with pytest.raises(ConflictError) as refused:
        await store.deploy(
            Deployment(
                project=Project("q", "Pharmacy"),
                create=True,
                credentials=(NewCredential("cq", "q", "api", {}),),
                workflows=(
                    WorkflowSave(a_workflow("first", "q", credential_id="cq"), new=True),
                    WorkflowSave(a_workflow("w", "q"), new=True),
                ),
            ),
            record=records,
        )
    assert (refused.value.field, refused.value.message) == (
        "workflows[1].id",
        "workflow 'named w': workflow w already exists",
    )
    with pytest.raises(NotFoundError):
        await store.get_project("q")
    for missing in (store.get_credential("cq"), store.get_workflow("first")):
        with pytest.raises(NotFoundError):
            await missing
    assert await store.list_credentials("q") == []
    assert await actions(store) == []


async def test_a_record_that_cannot_be_appended_takes_the_deployment_back(
    store: SQLStore,
) -> None:
    """The records are in the deployment's transaction: one refused refuses it all."""
    await seed(store)

    def unusable(done: Deployed) -> list[NewAuditRecord]:
        return [*records(done), NewAuditRecord(BY, "not a code", Target("project", "p"), "p")]

    with pytest.raises(InputError):
        await store.deploy(
            Deployment(
                project=Project("p", "Clinic (renamed)"),
                workflows=(WorkflowSave(a_workflow("first", "p"), new=True),),
            ),
            record=unusable,
        )
    assert (await store.get_project("p")).name == "Clinic"
    assert [w.workflow.id for w in (await store.list_workflows("p")).items] == ["w"]
    assert await actions(store) == []


async def test_a_new_credential_never_overwrites_a_stored_one(store: SQLStore) -> None:
    await seed(store)
    with pytest.raises(ConflictError) as refused:
        await store.deploy(
            Deployment(credentials=(NewCredential("c", "p", "renamed", {}),)), record=records
        )
    assert refused.value.field == "credentials[0].id"
    assert [(c.id, c.name) for c in await store.list_credentials("p")] == [("c", "api")]
    assert await store.get_credential_body("c") != {}


async def test_deleting_a_workflow_that_is_gone_refuses_the_deployment(store: SQLStore) -> None:
    await seed(store)
    with pytest.raises(NotFoundError) as refused:
        await store.deploy(
            Deployment(
                project=Project("p", "Clinic (renamed)"),
                deletions=("w", "never-was"),
            ),
            record=records,
        )
    assert refused.value.field == "deletions[1].id"
    assert (await store.get_workflow("w")).version == 1
    assert replace(await store.get_project("p"), inserted_at=None, updated_at=None) == Project(
        "p", "Clinic"
    )
