"""Creating and editing workflows in the browser: ``/ui/projects/<id>/workflows/new`` and
``/ui/workflows/<id>/edit``, one form each (workflow_form.py), and the code editor's script.

A save goes through the REST API's own save (``api.catalog.create`` and ``replace``): the
same checks (schedules, syntax per language, packages), the same resolution of adaptors and
packages to exact versions, the same optimistic lock. There is no second way to save a
workflow. What it refuses is shown next to the field it names, with the status the API would
give (422, 409, 502, 503); a body that does not parse has its line marked in the editor.

A save based on a version someone else has replaced since is refused (409) with the whole
form as it was posted, and a button that saves it over the newer version once the user has
decided to: nothing typed is lost either way.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api import catalog as api_catalog
from fulmen.coordinator.api import status_of
from fulmen.coordinator.api.schemas.catalog import WorkflowIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.bundle import EditorBundle
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, same_origin
from fulmen.coordinator.dashboard.workflow_form import (
    CONDITIONS,
    DEFAULT_ADAPTORS,
    Draft,
    field_key,
)
from fulmen.coordinator.guard import require_on, require_project
from fulmen.errors import ConflictError, FulmenError, InputError, NotFoundError
from fulmen.plan import LANGUAGE_NAMES
from fulmen.store import Project, StoredWorkflow

__all__ = ["router"]

router = APIRouter(route_class=Guarded)


def _c(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


def _bundle(request: Request) -> EditorBundle:
    bundle: EditorBundle = request.app.state.editor_bundle
    return bundle


@router.get("/editor/{digest}/editor.js", include_in_schema=False)
async def editor_script(request: Request, digest: str) -> Response:
    """The code editor's bundle; its URL changes with its sources, so it is cached for good."""
    bundle = _bundle(request)
    if digest != bundle.digest or not bundle.ready:
        return Response("not built", 404, media_type="text/plain")
    return FileResponse(
        bundle.path,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.get("/projects/{project_id}/workflows/new", response_class=HTMLResponse)
async def new_workflow(request: Request, project_id: str, me: Signed) -> Response:
    c = _c(request)
    await require_project(c.store, me, Permission.EDIT, project_id)
    try:
        project = await c.store.get_project(project_id)
    except NotFoundError:
        return page(
            "missing.html", 404, what=f"project {project_id}", status=await status(c), me=me
        )
    return await _form(request, me, project, None, Draft.new())


@router.post("/projects/{project_id}/workflows/new", response_class=HTMLResponse)
async def create_workflow(request: Request, project_id: str, me: Signed) -> Response:
    c = _c(request)
    await require_project(c.store, me, Permission.EDIT, project_id)
    try:
        project = await c.store.get_project(project_id)
    except NotFoundError:
        return page(
            "missing.html", 404, what=f"project {project_id}", status=await status(c), me=me
        )
    return await _posted(request, me, project, None)


@router.get("/workflows/{workflow_id}/edit", response_class=HTMLResponse)
async def edit_workflow(request: Request, workflow_id: str, me: Signed, saved: int = 0) -> Response:
    c = _c(request)
    try:
        await require_on(c.store, me, Permission.EDIT, "workflow", workflow_id)
        stored = await c.store.get_workflow(workflow_id)
    except NotFoundError:
        return page(
            "missing.html", 404, what=f"workflow {workflow_id}", status=await status(c), me=me
        )
    project = await c.store.get_project(stored.workflow.project_id)
    notice = f"Saved as version {stored.version}." if saved == stored.version else ""
    return await _form(request, me, project, stored, Draft.of(stored), notice=notice)


@router.post("/workflows/{workflow_id}/edit", response_class=HTMLResponse)
async def save_workflow(request: Request, workflow_id: str, me: Signed) -> Response:
    c = _c(request)
    try:
        await require_on(c.store, me, Permission.EDIT, "workflow", workflow_id)
        stored = await c.store.get_workflow(workflow_id)
    except NotFoundError:
        return page(
            "missing.html", 404, what=f"workflow {workflow_id}", status=await status(c), me=me
        )
    project = await c.store.get_project(stored.workflow.project_id)
    return await _posted(request, me, project, stored)


async def _posted(
    request: Request, me: Principal, project: Project, stored: StoredWorkflow | None
) -> Response:
    """A posted form: a change of shape (rendered again), or a save."""
    form = await request.form()
    fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    draft = Draft.read(fields)
    action = fields.get("do", "save")
    if not same_origin(request):
        return await _form(
            request, me, project, stored, draft, 403, errors={"": "Save from this site only."}
        )
    if action == "save" or action.startswith("overwrite:"):
        expected = draft.version
        if action.startswith("overwrite:") and action[len("overwrite:") :].isdigit():
            expected = int(action[len("overwrite:") :])
        return await _save(request, me, project, stored, draft, expected)
    focus = draft.apply(action)
    return await _form(request, me, project, stored, draft, focus=focus)


async def _save(
    request: Request,
    me: Principal,
    project: Project,
    stored: StoredWorkflow | None,
    draft: Draft,
    expected: int | None,
) -> Response:
    if problems := draft.problems():
        return await _form(request, me, project, stored, draft, 422, errors=problems)
    c = _c(request)
    current = stored.workflow if stored is not None else None
    try:
        document = WorkflowIn.model_validate(draft.document(current))
    except ValidationError as invalid:
        errors: dict[str, str] = {}
        for item in invalid.errors():
            errors.setdefault(field_key(tuple(item["loc"])), str(item["msg"]))
        return await _form(request, me, project, stored, draft, 422, errors=errors)
    by = audit.actor(request, me)
    try:
        if stored is None:
            saved = await api_catalog.create(c, by, project.id, document)
        else:
            saved = await api_catalog.replace(c, by, stored.workflow.id, document, expected)
    except ConflictError as conflict:
        if conflict.code != "stale_version" or stored is None:
            return await _form(
                request, me, project, stored, draft, 409, errors={"": conflict.message}
            )
        latest = await c.store.get_workflow(stored.workflow.id)
        draft.version = expected  # the form still says which version it was based on
        return await _form(request, me, project, stored, draft, 409, conflict=latest.version)
    except FulmenError as error:
        key = field_key(error.field) if isinstance(error, InputError) and error.field else ""
        line = error.line if isinstance(error, InputError) else None
        return await _form(
            request,
            me,
            project,
            stored,
            draft,
            status_of(error),
            errors={key: error.message},
            error_line=(key, line) if line else None,
        )
    target = f"{PREFIX}/workflows/{quote(saved.workflow.id)}/edit?saved={saved.version}"
    return RedirectResponse(target, 303)


async def _form(
    request: Request,
    me: Principal,
    project: Project,
    stored: StoredWorkflow | None,
    draft: Draft,
    status_code: int = 200,
    *,
    errors: dict[str, str] | None = None,
    focus: str | None = None,
    notice: str = "",
    conflict: int | None = None,
    error_line: tuple[str, int] | None = None,
) -> Response:
    c = _c(request)
    bundle = _bundle(request)
    context: dict[str, Any] = {
        "section": "workflows",
        "status": await status(c),
        "me": me,
        "project": project,
        "stored": stored,
        "draft": draft,
        "errors": errors or {},
        "focus": focus,
        "notice": notice,
        "conflict": conflict,
        "error_lines": dict([error_line]) if error_line else {},
        "conditions": CONDITIONS,
        "languages": LANGUAGE_NAMES,
        "default_adaptors": DEFAULT_ADAPTORS,
        "credentials": await c.store.list_credentials(project.id),
        "keychains": await c.store.list_keychains(project.id),
        "editor_script": PREFIX + bundle.url_path if bundle.ready else None,
        "editor_status": bundle.status(),
        "base": str(request.base_url).rstrip("/"),
    }
    return page("workflow_edit.html", status_code, **context)
