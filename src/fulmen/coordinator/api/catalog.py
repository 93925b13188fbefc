"""Projects, workflows (saved whole, as one document) and credentials (write-only values)."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response

from fulmen import cron
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
from fulmen.coordinator.python_packages import checked_pins, resolve_python
from fulmen.coordinator.resolution import checked_adaptors, resolve_workflow
from fulmen.errors import InputError
from fulmen.store import (
    NewCredential,
    Store,
    StoredWorkflow,
    Workflow,
    check_packages,
    check_sources,
)

__all__ = ["create", "replace", "router"]

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
    request: Request, cursor: Cursor = None, limit: Limit = 100
) -> PageDoc[ProjectDoc]:
    page = await _store(request).list_projects(cursor=cursor, limit=limit)
    return PageDoc(items=[ProjectDoc.of(p) for p in page.items], next_cursor=page.next_cursor)


@router.post("/projects", tags=["projects"], status_code=201)
async def create_project(request: Request, project: ProjectIn) -> ProjectDoc:
    return ProjectDoc.of(await _store(request).create_project(project.to_store()))


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(request: Request, project_id: PathId) -> ProjectDoc:
    return ProjectDoc.of(await _store(request).get_project(project_id))


@router.put("/projects/{project_id}", tags=["projects"])
async def replace_project(request: Request, project_id: PathId, project: ProjectIn) -> ProjectDoc:
    return ProjectDoc.of(await _store(request).replace_project(project.to_store(project_id)))


@router.delete("/projects/{project_id}", tags=["projects"], status_code=204)
async def delete_project(request: Request, project_id: PathId) -> Response:
    await _store(request).delete_project(project_id)
    return Response(status_code=204)


# -- workflows -----------------------------------------------------------------------------


def _check_schedules(workflow: WorkflowIn) -> None:
    """Cron triggers are checked when saved, not when they would first fire."""
    for index, trigger in enumerate(workflow.triggers):
        if trigger.type == "cron":
            try:
                cron.parse(trigger.cron_expression or "", trigger.timezone)
            except InputError as error:
                part = "timezone" if error.code == "bad_timezone" else "cron_expression"
                error.field = f"triggers[{index}].{part}"
                raise


async def _resolved(
    coordinator: Coordinator, workflow: Workflow, current: Workflow | None = None
) -> Workflow:
    """``workflow`` as it is saved: its sources and packages checked first (no registry is
    asked about a workflow that would be refused anyway), then its JavaScript adaptors and
    its Python packages at exact versions (those ``current`` already had are not asked about
    again)."""
    check_sources(workflow)
    check_packages(workflow.jobs)
    checked = checked_adaptors(current) if current is not None else frozenset()
    workflow = await resolve_workflow(workflow, coordinator.registry, checked=checked)
    pins = checked_pins(current) if current is not None else frozenset()
    return await resolve_python(workflow, coordinator.python_repo, checked=pins)


async def create(c: Coordinator, project_id: str, workflow: WorkflowIn) -> StoredWorkflow:
    """Save a new workflow in ``project_id``: the one way to, for the API and the dashboard.

    Raises:
        InputError: a schedule, source or package refused (``field`` names the value);
        RegistryError, ConfigError: its packages could not be resolved; StoreError.
    """
    _check_schedules(workflow)
    saved = await _resolved(c, workflow.to_store(project_id))
    return await c.store.create_workflow(saved)


async def replace(
    c: Coordinator, workflow_id: str, workflow: WorkflowIn, expected_version: int | None
) -> StoredWorkflow:
    """Save ``workflow`` as the next version of ``workflow_id``: the one way to, for the API
    and the dashboard.

    Raises:
        ConflictError: ``expected_version`` is not the current version (another save came
        first); otherwise as :func:`create`.
    """
    _check_schedules(workflow)
    current = await c.store.get_workflow(workflow_id)
    replaced = await _resolved(
        c, workflow.to_store(current.workflow.project_id, workflow_id), current.workflow
    )
    return await c.store.replace_workflow(replaced, expected_version=expected_version)


#: What a save may answer besides the common answers: its packages could not be resolved.
_SAVE_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    502: {
        "model": ErrorDoc,
        "description": "The npm registry or the Python package index could not be asked",
    },
    503: {"model": ErrorDoc, "description": "uv, which resolves Python packages, is missing"},
}


@router.get("/projects/{project_id}/workflows", tags=["workflows"])
async def list_workflows(
    request: Request, project_id: PathId, cursor: Cursor = None, limit: Limit = 100
) -> PageDoc[WorkflowDoc]:
    store = _store(request)
    await store.get_project(project_id)
    page = await store.list_workflows(project_id, cursor=cursor, limit=limit)
    return PageDoc(items=[WorkflowDoc.of(w) for w in page.items], next_cursor=page.next_cursor)


@router.post(
    "/projects/{project_id}/workflows",
    tags=["workflows"],
    status_code=201,
    responses=_SAVE_ANSWERS,
)
async def create_workflow(
    request: Request, project_id: PathId, workflow: WorkflowIn
) -> WorkflowDoc:
    return WorkflowDoc.of(await create(_coordinator(request), project_id, workflow))


@router.get("/workflows/{workflow_id}", tags=["workflows"])
async def get_workflow(request: Request, workflow_id: PathId) -> WorkflowDoc:
    return WorkflowDoc.of(await _store(request).get_workflow(workflow_id))


@router.put("/workflows/{workflow_id}", tags=["workflows"], responses=_SAVE_ANSWERS)
async def replace_workflow(
    request: Request,
    workflow_id: PathId,
    workflow: WorkflowIn,
    expected_version: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_INT32, description="the version you read; 409 if another save came first"
        ),
    ] = None,
) -> WorkflowDoc:
    saved = await replace(_coordinator(request), workflow_id, workflow, expected_version)
    return WorkflowDoc.of(saved)


@router.delete("/workflows/{workflow_id}", tags=["workflows"], status_code=204)
async def delete_workflow(request: Request, workflow_id: PathId) -> Response:
    await _store(request).delete_workflow(workflow_id)
    return Response(status_code=204)


# -- credentials ---------------------------------------------------------------------------


@router.get("/projects/{project_id}/credentials", tags=["credentials"])
async def list_credentials(request: Request, project_id: PathId) -> PageDoc[CredentialDoc]:
    store = _store(request)
    await store.get_project(project_id)
    return PageDoc(items=[CredentialDoc.of(i) for i in await store.list_credentials(project_id)])


@router.post("/projects/{project_id}/credentials", tags=["credentials"], status_code=201)
async def create_credential(
    request: Request, project_id: PathId, credential: CredentialIn
) -> CredentialDoc:
    return await _put_credential(request, project_id, credential.id, credential)


@router.put("/projects/{project_id}/credentials/{credential_id}", tags=["credentials"])
async def replace_credential(
    request: Request, project_id: PathId, credential_id: PathId, credential: CredentialIn
) -> CredentialDoc:
    return await _put_credential(request, project_id, credential_id, credential)


async def _put_credential(
    request: Request, project_id: str, credential_id: str, credential: CredentialIn
) -> CredentialDoc:
    store = _store(request)
    await store.get_project(project_id)
    new = NewCredential(credential_id, project_id, credential.name, credential.body)
    return CredentialDoc.of(await store.put_credential(new))


@router.delete("/credentials/{credential_id}", tags=["credentials"], status_code=204)
async def delete_credential(request: Request, credential_id: PathId) -> Response:
    await _store(request).delete_credential(credential_id)
    return Response(status_code=204)
