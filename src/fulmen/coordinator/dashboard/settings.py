"""``/ui/settings``: each of the caller's projects' settings (runs in flight at once, how long
its history and its dataclips are kept, whether bodies outlive their runs, whether its viewers
see them) and each of its workflows' automatic retries: forms for a project's admins (its
settings) and editors (retries), the values alone for the others.

A project is saved as the REST API's ``PUT /api/projects/<id>`` saves it: the form's values
checked by ``ProjectIn``, then ``api.catalog.update_project`` (with its audit record). A
workflow's retries are saved through ``api.catalog.save_workflow``, with the version the page
showed (a save made meanwhile is refused, not overwritten). A refusal is shown by the field it
names, in the API's words.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.catalog import save_workflow, update_project
from fulmen.coordinator.api.schemas.catalog import ProjectIn, RetryDoc
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    Problem,
    blank_to_none,
    cross_site,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_on, require_project
from fulmen.errors import FulmenError, InputError

__all__ = ["router"]

router = APIRouter(route_class=Guarded)
PROJECT_FIELDS: Final = (
    "name",
    "concurrency",
    "history_retention_period",
    "dataclip_retention_period",
    "retention_policy",
)
RETRY_FIELDS: Final = ("max_retries", "backoff_ms", "backoff_max_ms", "on_fail", "version")
DONE: Final = {"project": "Project settings saved.", "retry": "Retries saved."}

Field = Annotated[str, Form()]


async def _page(
    request: Request,
    me: Principal,
    problem: Problem | None = None,
    entered: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page; after a refusal, the refused form shows what was typed (``entered``), so
    that it can be corrected rather than typed again."""
    c: Coordinator = request.app.state.coordinator
    projects = [{"project": p, "workflows": w} for p, w in await catalog(c.store, me)]
    return page(
        "settings.html",
        problem.status if problem else 200,
        section="settings",
        status=await status(c),
        me=me,
        projects=projects,
        problem=problem,
        entered=entered or {},
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/settings", response_class=HTMLResponse)
async def settings(request: Request, me: Signed) -> Response:
    return await _page(request, me)


@router.post("/settings/projects/{project_id}", response_class=HTMLResponse)
async def save_project(
    request: Request,
    project_id: str,
    me: Signed,
    name: Field = "",
    concurrency: Field = "",
    history_retention_period: Field = "",
    dataclip_retention_period: Field = "",
    retention_policy: Field = "retain_all",
    viewers_see_bodies: Field = "",
) -> Response:
    """Blank number fields are "no limit" / "forever", as ``null`` is in the API;
    ``viewers_see_bodies`` is a checkbox: present (any value) is on."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    values = {
        "id": project_id,
        "name": name.strip(),
        "concurrency": concurrency,
        "history_retention_period": history_retention_period,
        "dataclip_retention_period": dataclip_retention_period,
        "retention_policy": retention_policy,
        "viewers_see_bodies": viewers_see_bodies,
    }
    try:
        typed = blank_to_none(values, PROJECT_FIELDS) | {
            "viewers_see_bodies": bool(viewers_see_bodies)
        }
        given = ProjectIn.model_validate(typed)
        await update_project(c.store, audit.actor(request, me), project_id, given)
    except (ValidationError, FulmenError) as error:
        problem = problem_of(f"project:{project_id}", error, PROJECT_FIELDS)
        return await _page(request, me, problem, values)
    return RedirectResponse(f"{PREFIX}/settings?done=project#project-{project_id}", 303)


@router.post("/settings/workflows/{workflow_id}/retry", response_class=HTMLResponse)
async def save_retry(
    request: Request,
    workflow_id: str,
    me: Signed,
    version: Field = "",
    max_retries: Field = "",
    backoff_ms: Field = "",
    backoff_max_ms: Field = "",
    on_fail: Field = "",
) -> Response:
    """``on_fail`` is a checkbox: present (any value) is on."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_on(c.store, me, Permission.EDIT, "workflow", workflow_id)
    values = {
        "max_retries": max_retries,
        "backoff_ms": backoff_ms,
        "backoff_max_ms": backoff_max_ms,
    }
    form = f"retry:{workflow_id}"
    try:
        if not version.isdigit():
            raise InputError("the workflow version the page showed is missing", field="version")
        typed = blank_to_none(values, RETRY_FIELDS)
        retry = RetryDoc.model_validate(typed | {"on_fail": bool(on_fail)})
        current = (await c.store.get_workflow(workflow_id)).workflow
        changed = replace(current, retry=retry.to_store())
        by = audit.actor(request, me)
        await save_workflow(c, by, changed, expected_version=int(version))
    except (ValidationError, FulmenError) as error:
        return await _page(request, me, problem_of(form, error, RETRY_FIELDS), values)
    return RedirectResponse(f"{PREFIX}/settings?done=retry#workflow-{workflow_id}", 303)
