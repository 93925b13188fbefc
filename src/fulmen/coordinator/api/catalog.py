"""Projects, workflows (saved whole, as one document) and credentials (write-only values).

:func:`save_workflow` (with :func:`create` and :func:`replace`), :func:`update_project`,
:func:`put_credential` and :func:`remove_credential` are how these are changed, here and on
the dashboard's pages (dashboard/editing.py, triggers.py, credentials.py, settings.py): one
path, so that both check the same things, refuse with the same errors, and leave the same
record in the audit trail, made in the change's own transaction (coordinator/audit.py); a
deployment (api/deployments.py) checks and resolves each workflow with :func:`prepared`. Who
may change them is asked by each door before it calls them (access.py: editors save
workflows, admins credentials and a project's settings, owners delete a project).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response

from fulmen import cron
from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, require_project_creator
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.catalog import (
    CredentialDoc,
    CredentialIn,
    ProjectDoc,
    ProjectIn,
    WorkflowDoc,
    WorkflowIn,
)
from fulmen.coordinator.api.schemas.common import MAX_INT32, ErrorDoc, PageDoc, PathId
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project
from fulmen.coordinator.python_packages import checked_pins, resolve_python
from fulmen.coordinator.resolution import checked_adaptors, resolve_workflow
from fulmen.errors import InputError
from fulmen.store import (
    Actor,
    CredentialInfo,
    NewCredential,
    Project,
    Store,
    StoredWorkflow,
    TriggerType,
    Workflow,
    check_packages,
    check_sources,
)

__all__ = [
    "SAVE_ANSWERS",
    "create",
    "prepared",
    "put_credential",
    "remove_credential",
    "replace",
    "router",
    "save_workflow",
    "update_project",
]

router = APIRouter()

Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=500)]


def _coordinator(request: Request) -> Coordinator:
    c: Coordinator = request.app.state.coordinator
    return c


def _store(request: Request) -> Store:
    return _coordinator(request).store


# -- projects ------------------------------------------------------------------------------


@router.get("/projects", tags=["projects"])
async def list_projects(
    request: Request, me: Caller, cursor: Cursor = None, limit: Limit = 100
) -> PageDoc[ProjectDoc]:
    """The projects the caller is a member of (every project, for an instance admin)."""
    ids = None if me.sees_all_projects() else me.roles.keys()
    page = await _store(request).list_projects(cursor=cursor, limit=limit, ids=ids)
    return PageDoc(items=[ProjectDoc.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.post("/projects", tags=["projects"], status_code=201)
async def create_project(request: Request, me: Caller, project: ProjectIn) -> ProjectDoc:
    """A new project, of which the caller (a user) is the owner; a service token may not."""
    require_project_creator(me)
    owner = me.id if me.kind == "user" else None
    store = _store(request)
    async with store.together():
        made = await store.create_project(project.to_store(), owner_id=owner)
        await store.append_audit(audit.project_change(audit.actor(request, me), None, made))
    return ProjectDoc.of(made)


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(request: Request, me: Caller, project_id: PathId) -> ProjectDoc:
    await require_project(_store(request), me, Permission.READ, project_id)
    return ProjectDoc.of(await _store(request).get_project(project_id))


@router.put("/projects/{project_id}", tags=["projects"])
async def replace_project(
    request: Request, me: Caller, project_id: PathId, project: ProjectIn
) -> ProjectDoc:
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    saved = await update_project(_store(request), audit.actor(request, me), project_id, project)
    return ProjectDoc.of(saved)


async def update_project(store: Store, by: Actor, project_id: str, project: ProjectIn) -> Project:
    """Replace the settings of the project ``project_id`` (NotFoundError if there is none):
    the one way to, for the API and the dashboard's settings page."""
    current = await store.get_project(project_id)
    async with store.together():
        saved = await store.replace_project(project.to_store(project_id))
        await store.append_audit(audit.project_change(by, current, saved))
    return saved


@router.delete("/projects/{project_id}", tags=["projects"], status_code=204)
async def delete_project(request: Request, me: Caller, project_id: PathId) -> Response:
    """Deletes the project with everything in it; its audit trail stays (kept as the
    instance's records are)."""
    store = _store(request)
    await require_project(store, me, Permission.OWN, project_id)
    current = await store.get_project(project_id)
    record = audit.project_change(audit.actor(request, me), current, None)
    # Not in a together() block: its history goes in batches that commit one by one.
    await store.delete_project(project_id, record=record)
    return Response(status_code=204)


# -- workflows -----------------------------------------------------------------------------


def _check_schedules(workflow: Workflow) -> None:
    """Cron triggers are checked when saved, not when they would first fire."""
    for index, trigger in enumerate(workflow.triggers):
        if trigger.type == TriggerType.CRON:
            try:
                cron.parse(trigger.cron_expression or "", trigger.timezone)
            except InputError as error:
                part = "timezone" if error.code == "bad_timezone" else "cron_expression"
                error.field = f"triggers[{index}].{part}"
                raise


async def save_workflow(
    coordinator: Coordinator,
    by: Actor,
    workflow: Workflow,
    *,
    expected_version: int | None = None,
    current: StoredWorkflow | None = None,
) -> StoredWorkflow:
    """Save ``workflow`` over the stored one of its id (``current``, read if not given): the
    one way to, for the API and every dashboard page. Its schedules, sources and packages
    are checked, its packages resolved (:func:`prepared`), then it replaces the stored one,
    refused with a ConflictError if ``expected_version`` is given and another save came
    first; ``workflow.updated`` is recorded for ``by``, with the document before and after,
    in the same transaction."""
    store = coordinator.store
    if current is None:
        current = await store.get_workflow(workflow.id)
    replaced = await prepared(coordinator, workflow, current.workflow)
    async with store.together():
        saved = await store.replace_workflow(replaced, expected_version=expected_version)
        await store.append_audit(audit.workflow_change(by, current, saved))
    return saved


async def prepared(
    coordinator: Coordinator, workflow: Workflow, current: Workflow | None = None
) -> Workflow:
    """``workflow`` as a save stores it: its schedules, sources and packages checked first
    (no registry is asked about a workflow that would be refused anyway), then its
    JavaScript adaptors and its Python packages at exact versions (those ``current``, the
    version it replaces, already had are not asked about again). What every save runs
    before it writes, and a deployment for each of its workflows (api/deployments.py).

    Raises:
        InputError: a schedule, source or package refused (``field`` names the value);
        RegistryError, ConfigError: its packages could not be resolved.
    """
    _check_schedules(workflow)
    check_sources(workflow)
    check_packages(workflow.jobs)
    checked = checked_adaptors(current) if current is not None else frozenset()
    workflow = await resolve_workflow(workflow, coordinator.registry, checked=checked)
    pins = checked_pins(current) if current is not None else frozenset()
    return await resolve_python(workflow, coordinator.python_repo, checked=pins)


async def create(
    c: Coordinator, by: Actor, project_id: str, workflow: WorkflowIn
) -> StoredWorkflow:
    """Save a new workflow in ``project_id``: the one way to, for the API and the dashboard
    (recorded as ``workflow.created`` for ``by``).

    Raises:
        InputError: a schedule, source or package refused (``field`` names the value);
        RegistryError, ConfigError: its packages could not be resolved; StoreError.
    """
    resolved = await prepared(c, workflow.to_store(project_id))
    async with c.store.together():
        saved = await c.store.create_workflow(resolved)
        await c.store.append_audit(audit.workflow_change(by, None, saved))
    return saved


async def replace(
    c: Coordinator,
    by: Actor,
    workflow_id: str,
    workflow: WorkflowIn,
    expected_version: int | None,
) -> StoredWorkflow:
    """Save the document ``workflow`` as the next version of ``workflow_id``
    (:func:`save_workflow`, for a document as the API and the editor receive it).

    Raises:
        ConflictError: ``expected_version`` is not the current version (another save came
        first); otherwise as :func:`create`.
    """
    current = await c.store.get_workflow(workflow_id)
    new = workflow.to_store(current.workflow.project_id, workflow_id)
    return await save_workflow(c, by, new, expected_version=expected_version, current=current)


#: What a save may answer besides the common answers: its packages could not be resolved.
SAVE_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    502: {
        "model": ErrorDoc,
        "description": "The npm registry or the Python package index could not be asked",
    },
    503: {"model": ErrorDoc, "description": "uv, which resolves Python packages, is missing"},
}


@router.get("/projects/{project_id}/workflows", tags=["workflows"])
async def list_workflows(
    request: Request, me: Caller, project_id: PathId, cursor: Cursor = None, limit: Limit = 100
) -> PageDoc[WorkflowDoc]:
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    await store.get_project(project_id)
    page = await store.list_workflows(project_id, cursor=cursor, limit=limit)
    return PageDoc(items=[WorkflowDoc.of(w) for w in page.items], next_cursor=page.next_cursor)


@router.post(
    "/projects/{project_id}/workflows",
    tags=["workflows"],
    status_code=201,
    responses=SAVE_ANSWERS,
)
async def create_workflow(
    request: Request, me: Caller, project_id: PathId, workflow: WorkflowIn
) -> WorkflowDoc:
    await require_project(_store(request), me, Permission.EDIT, project_id)
    made = await create(_coordinator(request), audit.actor(request, me), project_id, workflow)
    return WorkflowDoc.of(made)


@router.get("/workflows/{workflow_id}", tags=["workflows"])
async def get_workflow(request: Request, me: Caller, workflow_id: PathId) -> WorkflowDoc:
    await require_on(_store(request), me, Permission.READ, "workflow", workflow_id)
    return WorkflowDoc.of(await _store(request).get_workflow(workflow_id))


@router.put("/workflows/{workflow_id}", tags=["workflows"], responses=SAVE_ANSWERS)
async def replace_workflow(
    request: Request,
    me: Caller,
    workflow_id: PathId,
    workflow: WorkflowIn,
    expected_version: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INT32, description="the version you read; 409 if another save came first"
        ),
    ] = None,
) -> WorkflowDoc:
    await require_on(_store(request), me, Permission.EDIT, "workflow", workflow_id)
    by = audit.actor(request, me)
    saved = await replace(_coordinator(request), by, workflow_id, workflow, expected_version)
    return WorkflowDoc.of(saved)


@router.delete("/workflows/{workflow_id}", tags=["workflows"], status_code=204)
async def delete_workflow(request: Request, me: Caller, workflow_id: PathId) -> Response:
    store = _store(request)
    await require_on(store, me, Permission.EDIT, "workflow", workflow_id)
    current = await store.get_workflow(workflow_id)
    record = audit.workflow_change(audit.actor(request, me), current, None)
    await store.delete_workflow(workflow_id, record=record)  # as delete_project
    return Response(status_code=204)


# -- credentials ---------------------------------------------------------------------------


@router.get("/projects/{project_id}/credentials", tags=["credentials"])
async def list_credentials(
    request: Request, me: Caller, project_id: PathId
) -> PageDoc[CredentialDoc]:
    """Their names and which project, never their values."""
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    await store.get_project(project_id)
    return PageDoc(items=[CredentialDoc.of(i) for i in await store.list_credentials(project_id)])


@router.post("/projects/{project_id}/credentials", tags=["credentials"], status_code=201)
async def create_credential(
    request: Request, me: Caller, project_id: PathId, credential: CredentialIn
) -> CredentialDoc:
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return CredentialDoc.of(
        await put_credential(_store(request), by, project_id, credential.id, credential)
    )


@router.put("/projects/{project_id}/credentials/{credential_id}", tags=["credentials"])
async def replace_credential(
    request: Request,
    me: Caller,
    project_id: PathId,
    credential_id: PathId,
    credential: CredentialIn,
) -> CredentialDoc:
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return CredentialDoc.of(
        await put_credential(_store(request), by, project_id, credential_id, credential)
    )


async def put_credential(
    store: Store, by: Actor, project_id: str, credential_id: str, credential: CredentialIn
) -> CredentialInfo:
    """Create the credential, or replace its name and value (a NotFoundError for a project
    that does not exist, a ConflictError for an id another project has); recorded as
    ``credential.created`` or ``credential.updated`` with its name and the jobs using it,
    never its value."""
    await store.get_project(project_id)
    listed = await store.list_credentials(project_id)
    current = next((info for info in listed if info.id == credential_id), None)
    uses = await audit.credential_uses(store, project_id, credential_id)
    new = NewCredential(credential_id, project_id, credential.name, credential.body)
    async with store.together():
        saved = await store.put_credential(new)
        await store.append_audit(audit.credential_change(by, current, saved, uses))
    return saved


@router.delete("/credentials/{credential_id}", tags=["credentials"], status_code=204)
async def delete_credential(request: Request, me: Caller, credential_id: PathId) -> Response:
    await require_on(_store(request), me, Permission.MANAGE, "credential", credential_id)
    await remove_credential(_store(request), audit.actor(request, me), credential_id)
    return Response(status_code=204)


async def remove_credential(store: Store, by: Actor, credential_id: str) -> None:
    """Delete the credential (ConflictError while a job uses it), recorded as
    ``credential.deleted``."""
    current = await store.get_credential(credential_id)
    async with store.together():
        await store.delete_credential(credential_id)
        await store.append_audit(audit.credential_change(by, current, None, []))
