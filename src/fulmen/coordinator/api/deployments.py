"""``POST /api/deployments``: a project's whole desired state, deployed at once (issue 21).

``fulmen deploy`` sends its file here as one document: the project (by id, else by name among
the caller's), the credentials it must have (by name: a new one is created empty), each
workflow whole (replacing the stored one of its id at the version the caller read, or
created), and the workflows to delete. Three steps; a refusal at any of them writes nothing:

1. *Who may*, before anything else is checked or asked: each part as the route that changes
   it alone checks it (guard.py, access.py). A new project takes a caller who may create one
   (a user is made its owner); new settings and new credentials ``MANAGE``; workflows and
   deletions ``EDIT`` (each workflow that exists, through its own project, as its routes do).
2. *What is wanted*, checked and resolved as the single saves do: each workflow by
   ``catalog.prepared`` (schedules, sources, packages at exact versions, asking the npm
   registry and the Python package index) and the store's own rules (``check_workflow``),
   its version against the stored one, its credentials among the project's and the new ones.
   A workflow already as wanted is left alone (``unchanged``: no new version).
3. *Write* what changes with ``Store.deploy``: one transaction, with the records the single
   routes make of each change (coordinator/audit.py), all of it or none of it.

A refusal names the part at fault: the message begins with it (``workflow 'sync': ...``) and
``field`` is its path in the document (``workflows[1].jobs[0].adaptor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal
from uuid import uuid4

from fastapi import APIRouter, Request

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal, require_project_creator
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.catalog import SAVE_ANSWERS, prepared
from fulmen.coordinator.api.schemas.deployments import (
    Change,
    DeployedCredential,
    DeployedProject,
    DeployedWorkflow,
    DeploymentCredentialIn,
    DeploymentDoc,
    DeploymentIn,
    DeploymentProjectIn,
    DeploymentWorkflowIn,
)
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project
from fulmen.errors import ConflictError, FulmenError, InputError, NotFoundError
from fulmen.store import (
    CredentialInfo,
    Deployed,
    Deployment,
    NewCredential,
    Project,
    Store,
    StoredWorkflow,
    TriggerType,
    WorkflowSave,
    blame,
    check_workflow,
)

__all__ = ["router"]

router = APIRouter()

_PAGE: Final = 500


@dataclass
class _Stored:
    """What the parts asked for are now: read while the roles are checked."""

    #: The project's credentials.
    credentials: list[CredentialInfo]
    #: The workflows asked for that exist, by id.
    workflows: dict[str, StoredWorkflow]
    #: The project of each workflow to delete, by its id.
    homes: dict[str, str]


@dataclass
class _Plan:
    """What a deployment will do, worked out before anything is written."""

    project: Project
    #: The project's settings to write (created when ``create``); ``None``: kept.
    settings: Project | None
    create: bool
    #: Every credential asked for, by its place: its id, whether it is new.
    credentials: list[tuple[str, bool]]
    new_credentials: list[NewCredential]
    #: Each workflow asked for, by its place: the one it replaces (``None``: new), and the
    #: save (``None``: unchanged).
    workflows: list[tuple[StoredWorkflow | None, WorkflowSave | None]]


@router.post("/deployments", tags=["projects"], responses=SAVE_ANSWERS)
async def deploy(request: Request, me: Caller, wanted: DeploymentIn) -> DeploymentDoc:
    """Create or update a project, its credentials and workflows, and delete workflows, all
    at once: everything is checked (roles first) and resolved before anything is written,
    then written in one transaction. A refusal writes nothing and names the part at fault."""
    c: Coordinator = request.app.state.coordinator
    found = await _find(c.store, me, wanted.project)
    stored = await _require(c.store, me, found, wanted)
    plan = await _plan(c, found, stored, wanted)
    by = audit.actor(request, me)
    done = await c.store.deploy(
        Deployment(
            project=plan.settings,
            create=plan.create,
            owner_id=me.id if plan.create and me.kind == "user" else None,
            credentials=tuple(plan.new_credentials),
            workflows=tuple(save for _, save in plan.workflows if save is not None),
            deletions=tuple(wanted.deletions),
        ),
        record=lambda deployed: audit.deployment(by, deployed),
    )
    return _answer(wanted, plan, done)


async def _find(store: Store, me: Principal, asked: DeploymentProjectIn) -> Project | None:
    """The project asked for: by its id, else the caller's one of its name; ``None``: new."""
    if asked.id is not None:
        try:
            return await store.get_project(asked.id)
        except NotFoundError:
            return None
    ids = None if me.sees_all_projects() else me.roles.keys()
    named: list[Project] = []
    cursor = None
    while True:
        page = await store.list_projects(ids=ids, cursor=cursor, limit=_PAGE)
        named += [project for project in page.items if project.name == asked.name]
        if (cursor := page.next_cursor) is None:
            break
    if len(named) > 1:
        raise InputError(
            f"{len(named)} of your projects are named {asked.name!r}: give the id of one",
            code="ambiguous",
            field="project.name",
        )
    return named[0] if named else None


async def _require(
    store: Store, me: Principal, found: Project | None, wanted: DeploymentIn
) -> _Stored:
    """Raise unless ``me`` may make every change asked for, as the routes that make each
    alone check it; what the workflows asked for are now.

    Raises:
        AccessError: access.require's refusals (for a workflow or a deletion: naming it);
        NotFoundError: a workflow to delete that does not exist.
    """
    stored = _Stored([], {}, {})
    if found is None:
        require_project_creator(me)
    else:
        settings = _settings(found, wanted.project) is not None
        await require_project(
            store, me, Permission.MANAGE if settings else Permission.READ, found.id
        )
        stored.credentials = await store.list_credentials(found.id)
        names = {info.name for info in stored.credentials}
        if any(credential.name not in names for credential in wanted.credentials):
            await require_project(store, me, Permission.MANAGE, found.id)
        if wanted.workflows or wanted.deletions:
            await require_project(store, me, Permission.EDIT, found.id)
    for index, workflow in enumerate(wanted.workflows):
        try:
            await require_on(store, me, Permission.EDIT, "workflow", workflow.id)
        except NotFoundError:
            continue  # a new one: the project's check above
        except FulmenError as error:
            raise blame(error, f"workflow {workflow.name!r}", f"workflows[{index}]") from None
        stored.workflows[workflow.id] = await store.get_workflow(workflow.id)
    for index, workflow_id in enumerate(wanted.deletions):
        try:
            home = await require_on(store, me, Permission.EDIT, "workflow", workflow_id)
        except FulmenError as error:
            raise blame(error, None, f"deletions[{index}]") from None  # names the id
        stored.homes[workflow_id] = home
    return stored


async def _plan(
    c: Coordinator,
    found: Project | None,
    stored: _Stored,
    wanted: DeploymentIn,
) -> _Plan:
    """Everything asked for, checked and resolved; what changes.

    Raises:
        InputError, ConflictError, NotFoundError: a part refused, named (:func:`blame`);
        RegistryError, ConfigError: packages that could not be resolved, naming the workflow.
    """
    asked = wanted.project
    if found is None:
        project = Project(asked.id or str(uuid4()), asked.name, asked.concurrency)
        settings: Project | None = project
    else:
        project, settings = found, _settings(found, asked)
    _check_unique(wanted)
    listed = stored.credentials
    credentials = [
        _credential(listed, index, each) for index, each in enumerate(wanted.credentials)
    ]
    new = [
        NewCredential(credential_id, project.id, each.name, {})
        for (credential_id, is_new), each in zip(credentials, wanted.credentials, strict=True)
        if is_new
    ]
    known = {info.id for info in listed} | {credential.id for credential in new}
    workflows = []
    for index, workflow in enumerate(wanted.workflows):
        current = stored.workflows.get(workflow.id)
        try:
            save = await _workflow(c, project.id, current, workflow, known)
        except FulmenError as error:
            raise blame(error, f"workflow {workflow.name!r}", f"workflows[{index}]") from None
        workflows.append((current, save))
    for index, workflow_id in enumerate(wanted.deletions):
        if stored.homes[workflow_id] != project.id:
            raise ConflictError(
                f"workflow {workflow_id} belongs to another project: a deployment deletes "
                "only its own project's workflows",
                field=f"deletions[{index}]",
            )
    return _Plan(project, settings, found is None, credentials, new, workflows)


def _settings(found: Project, asked: DeploymentProjectIn) -> Project | None:
    """The project's settings as asked (those a deployment does not name kept); ``None``:
    they are so already."""
    if (found.name, found.concurrency) == (asked.name, asked.concurrency):
        return None
    return replace(found, name=asked.name, concurrency=asked.concurrency)


def _check_unique(wanted: DeploymentIn) -> None:
    """Refuse a part asked for twice (a workflow to save and delete is one of them)."""
    seen: set[tuple[str, str]] = set()
    parts = [
        *(
            (f"credentials[{i}].name", ("credential", c.name))
            for i, c in enumerate(wanted.credentials)
        ),
        *(
            (f"credentials[{i}].id", ("credential id", c.id))
            for i, c in enumerate(wanted.credentials)
            if c.id is not None
        ),
        *((f"workflows[{i}].id", ("workflow", w.id)) for i, w in enumerate(wanted.workflows)),
        *((f"deletions[{i}]", ("workflow", w)) for i, w in enumerate(wanted.deletions)),
    ]
    for where, part in parts:
        if part in seen:
            raise InputError(f"{part[0]} {part[1]!r} is asked for twice", field=where)
        seen.add(part)


def _credential(
    listed: Sequence[CredentialInfo], index: int, asked: DeploymentCredentialIn
) -> tuple[str, bool]:
    """The credential asked for: its id, and whether it is new."""
    named = next((info for info in listed if info.name == asked.name), None)
    if named is not None:
        if asked.id not in (None, named.id):
            raise ConflictError(
                f"credential {asked.name!r}: the project's credential of this name has the id "
                f"{named.id}, not {asked.id}",
                field=f"credentials[{index}].id",
            )
        return named.id, False
    credential_id = asked.id or str(uuid4())
    taken = next((info for info in listed if info.id == credential_id), None)
    if taken is not None:
        raise ConflictError(
            f"credential {asked.name!r}: the id {credential_id} is the project's credential "
            f"{taken.name!r}",
            field=f"credentials[{index}].id",
        )
    return credential_id, True


async def _workflow(
    c: Coordinator,
    project_id: str,
    current: StoredWorkflow | None,
    asked: DeploymentWorkflowIn,
    credentials: set[str],
) -> WorkflowSave | None:
    """The save of one workflow, checked and resolved; ``None``: it is as wanted already."""
    if current is not None and current.workflow.project_id != project_id:
        raise ConflictError(
            f"workflow {asked.id} belongs to another project; a workflow cannot move to "
            "another project",
            field="id",
        )
    if asked.expected_version is not None:
        if current is None:
            raise ConflictError(
                f"workflow {asked.id} was deleted since version {asked.expected_version} was read",
                field="expected_version",
                code="stale_version",
            )
        if current.version != asked.expected_version:
            raise ConflictError(
                f"workflow {asked.id} was saved by someone else: it is at version "
                f"{current.version}, this save was based on version {asked.expected_version}",
                field="expected_version",
                code="stale_version",
            )
    workflow = await prepared(
        c, asked.to_store(project_id), None if current is None else current.workflow
    )
    check_workflow(workflow)
    for index, job in enumerate(workflow.jobs):
        if job.credential_id is not None and job.credential_id not in credentials:
            raise NotFoundError(
                f"credential {job.credential_id} is not a credential of the project",
                field=f"jobs[{index}].credential_id",
            )
    if current is not None and workflow == current.workflow:
        return None
    return WorkflowSave(workflow, new=current is None, expected_version=asked.expected_version)


def _answer(wanted: DeploymentIn, plan: _Plan, done: Deployed) -> DeploymentDoc:
    """What was done to each part, in the order asked; the workflows deleted last."""
    project = plan.project
    verb: Literal["created", "updated", "unchanged"] = "unchanged"
    if done.project is not None and done.project.after is not None:
        project, verb = done.project.after, "created" if plan.create else "updated"
    saved = {c.after.workflow.id: c.after for c in done.workflows if c.after is not None}
    workflows = [
        _workflow_doc(
            current,
            saved.get(asked.id, current),
            "unchanged" if save is None else "created" if save.new else "updated",
        )
        for asked, (current, save) in zip(wanted.workflows, plan.workflows, strict=True)
    ]
    workflows += [
        _workflow_doc(c.before, None, "deleted") for c in done.workflows if c.after is None
    ]
    credentials = [
        DeployedCredential(
            id=credential_id, name=asked.name, change="created" if new else "unchanged"
        )
        for (credential_id, new), asked in zip(plan.credentials, wanted.credentials, strict=True)
    ]
    return DeploymentDoc(
        project=DeployedProject(id=project.id, name=project.name, change=verb),
        credentials=credentials,
        workflows=workflows,
    )


def _workflow_doc(
    before: StoredWorkflow | None, after: StoredWorkflow | None, change: Change
) -> DeployedWorkflow:
    """One workflow's part of the answer, with the webhook triggers the deployment made."""
    shown = after or before
    assert shown is not None  # a change has a side
    known = {trigger.id for trigger in before.workflow.triggers} if before else set()
    webhooks = [
        trigger.id
        for trigger in (after.workflow.triggers if after else ())
        if trigger.type is TriggerType.WEBHOOK and trigger.id not in known
    ]
    return DeployedWorkflow(
        id=shown.workflow.id,
        name=shown.workflow.name,
        change=change,
        version=None if after is None else after.version,
        webhooks=webhooks,
    )
