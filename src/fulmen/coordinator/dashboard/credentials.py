"""``/ui/credentials``: each project's credentials, the jobs that use each, and forms to create
one, set its value and delete it; OAuth2 credentials with their state and a "Connect" button
(dashboard/oauth2.py has their forms).

A value is write-only, as in the REST API: it is sent once, through a form, sealed by the
store, and never rendered again (nor echoed back when the form is refused: it is then written
again). The page shows only that a value is set, and when. Saving goes through
``api.catalog.put_credential``, deleting through ``api.catalog.remove_credential``, which
refuses while a job still names the credential: the API's own paths, refusals and audit
records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.catalog import put_credential, remove_credential
from fulmen.coordinator.api.schemas.catalog import CredentialIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    Problem,
    cross_site,
    json_object,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_project
from fulmen.errors import FulmenError, NotFoundError
from fulmen.store import CredentialInfo, Project

__all__ = ["FIELDS", "credentials_page", "done", "router"]

router = APIRouter(route_class=Guarded)
#: The fields of the credential forms, as problems name them.
FIELDS: Final = (
    "id",
    "name",
    "body",
    # an OAuth2 credential's (dashboard/oauth2.py)
    "grant",
    "authorization_url",
    "token_url",
    "client_id",
    "client_secret",
    "scopes",
)
#: What the page says after a change (``?done=``), by what was done.
DONE: Final = {
    "created": "Credential {name} created; its value is set.",
    "set": "The value of {name} is set.",
    "deleted": "Credential deleted.",
    "oauth2_created": "OAuth2 credential {name} created.",
    "connected": "{name} is connected: runs get its token, refreshed before it expires.",
    "not_connected": "{name} is not connected: see why on its card.",
}


@dataclass(frozen=True, slots=True)
class Use:
    """A job that names a credential: where a user goes to change it."""

    workflow_id: str
    workflow: str
    job_id: str
    job: str


async def _listing(c: Coordinator, me: Principal) -> list[dict[str, Any]]:
    """The caller's projects, their credentials, and for each the jobs (of the workflows'
    current versions) that use it."""
    out: list[dict[str, Any]] = []
    for project, workflows in await catalog(c.store, me):
        uses: dict[str, list[Use]] = {}
        for stored in workflows:
            w = stored.workflow
            for job in w.jobs:
                if job.credential_id:
                    use = Use(w.id, w.name, job.id, job.name or job.id[:8])
                    uses.setdefault(job.credential_id, []).append(use)
        chains: dict[str, list[str]] = {}  # the keychains that can choose each (issue 19)
        for keychain in await c.store.list_keychains(project.id):
            for credential_id in {*keychain.entries.values(), keychain.default_credential_id}:
                if credential_id:
                    chains.setdefault(credential_id, []).append(keychain.name)
        credentials = await c.store.list_credentials(project.id)
        oauth2 = {
            state.credential_id: state for state in await c.store.list_oauth2_states(project.id)
        }
        items = [
            {
                "info": info,
                "uses": uses.get(info.id, []),
                "keychains": chains.get(info.id, []),
                "oauth2": oauth2.get(info.id),
            }
            for info in credentials
        ]
        out.append({"project": project, "credentials": items})
    return out


async def credentials_page(
    request: Request, me: Principal, problem: Problem | None = None, done: str | None = None
) -> HTMLResponse:
    """Forms only where the caller manages credentials (admins)."""
    c: Coordinator = request.app.state.coordinator
    projects = await _listing(c, me)
    notice = None
    if done in DONE:
        named = {i["info"].id: i["info"].name for p in projects for i in p["credentials"]}
        notice = DONE[done].format(name=named.get(request.query_params.get("id", ""), ""))
    return page(
        "credentials.html",
        problem.status if problem else 200,
        section="credentials",
        status=await status(c),
        me=me,
        projects=projects,
        problem=problem,
        notice=notice,
        oauth2_redirect=str(request.base_url).rstrip("/") + f"{PREFIX}/oauth2/callback",
    )


def done(what: str, credential_id: str) -> RedirectResponse:
    return RedirectResponse(
        f"{PREFIX}/credentials?done={what}&id={credential_id}#credential-{credential_id}", 303
    )


@router.get("/credentials", response_class=HTMLResponse)
async def credentials(request: Request, me: Signed, done: str | None = None) -> Response:
    return await credentials_page(request, me, done=done)


@router.post("/credentials/{project_id}", response_class=HTMLResponse)
async def create(
    request: Request,
    project_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    body: Annotated[str, Form()] = "",
) -> Response:
    """A new credential with its value (a credential without one would fail its jobs)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    form = f"new:{project_id}"
    try:
        given = CredentialIn.model_validate(
            {"name": name.strip(), "body": json_object(body, "body")}
        )
        made = await put_credential(c.store, audit.actor(request, me), project_id, given.id, given)
    except (ValidationError, FulmenError) as error:
        return await credentials_page(request, me, problem_of(form, error, FIELDS))
    return done("created", made.id)


@router.post("/credentials/{project_id}/{credential_id}/value", response_class=HTMLResponse)
async def set_value(
    request: Request,
    project_id: str,
    credential_id: str,
    me: Signed,
    body: Annotated[str, Form()] = "",
) -> Response:
    """Replace the value; the name stays."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    form = f"value:{credential_id}"
    try:
        current = await _credential(c, project_id, credential_id)
        given = CredentialIn.model_validate(
            {"id": credential_id, "name": current.name, "body": json_object(body, "body")}
        )
        await put_credential(c.store, audit.actor(request, me), project_id, credential_id, given)
    except (ValidationError, FulmenError) as error:
        return await credentials_page(request, me, problem_of(form, error, FIELDS))
    return done("set", credential_id)


@router.post("/credentials/{project_id}/{credential_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, project_id: str, credential_id: str, me: Signed) -> Response:
    """Refused (409, saying which jobs) while a job uses it."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    try:
        await _credential(c, project_id, credential_id)
        await remove_credential(c.store, audit.actor(request, me), credential_id)
    except FulmenError as error:
        return await credentials_page(
            request, me, problem_of(f"delete:{credential_id}", error, FIELDS)
        )
    return RedirectResponse(f"{PREFIX}/credentials?done=deleted#project-{project_id}", 303)


async def _credential(c: Coordinator, project_id: str, credential_id: str) -> CredentialInfo:
    """The project's credential of that id (NotFoundError otherwise: also when the project
    does not exist)."""
    project: Project = await c.store.get_project(project_id)
    for info in await c.store.list_credentials(project.id):
        if info.id == credential_id:
            return info
    raise NotFoundError(f"credential {credential_id} does not exist in project {project.name}")
