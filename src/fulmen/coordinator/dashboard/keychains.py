"""``/ui/keychains``: each project's keychains (issue 19), the jobs that name each, and forms
to create one, change it and delete it.

A keychain's entries are written one per line, ``value = credential``, the credential by its
name (or its id, when two credentials share a name); the page lists the project's credentials
beside the form. Saving goes through ``api.keychains.put_keychain``, deleting through
``api.keychains.remove_keychain`` (refused while a job names it): the API's own checks,
refusals and audit records. What a keychain is and when it chooses: store/keychains.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.keychains import put_keychain, remove_keychain
from fulmen.coordinator.api.schemas.keychains import KeychainIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_project
from fulmen.errors import FulmenError, InputError, NotFoundError
from fulmen.store import CredentialInfo, KeychainInfo

__all__ = ["entries_text", "read_entries", "router"]

router = APIRouter(route_class=Guarded)
#: The fields of the keychain forms, as problems name them.
FIELDS: Final = ("id", "name", "path", "entries", "default_credential_id")
DONE: Final = {
    "created": "Keychain {name} created.",
    "saved": "Keychain {name} saved.",
    "deleted": "Keychain deleted.",
}


def read_entries(text: str, credentials: list[CredentialInfo]) -> dict[str, str]:
    """The lines ``value = credential`` (a credential's name, or its id) as the API's
    ``entries``; blank lines are skipped.

    Raises:
        InputError: ``bad_entry`` naming the line that is not ``value = credential``, or
            whose credential no credential of the project is (or two are, by name).
    """
    by_id = {info.id: info.id for info in credentials}
    by_name: dict[str, list[str]] = {}
    for info in credentials:
        by_name.setdefault(info.name, []).append(info.id)
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        value, equals, credential = (part.strip() for part in line.rpartition("="))
        if not equals or not value or not credential:
            raise InputError(
                f"line {number}: write value = credential (its name or id)",
                code="bad_entry",
                field="entries",
            )
        named = by_name.get(credential, [])
        if credential in by_id:
            entries[value] = credential
        elif len(named) == 1:
            entries[value] = named[0]
        else:
            why = "two credentials have that name; use its id" if named else "no such credential"
            raise InputError(
                f"line {number}: {credential!r}: {why}", code="bad_entry", field="entries"
            )
    return entries


def entries_text(info: KeychainInfo, credentials: list[CredentialInfo]) -> str:
    """A keychain's entries as its form shows them (by name when the name is unique)."""
    names: dict[str, list[str]] = {}
    for credential in credentials:
        names.setdefault(credential.name, []).append(credential.id)
    shown = {c.id: c.name if len(names[c.name]) == 1 else c.id for c in credentials}
    return "\n".join(f"{value} = {shown.get(cid, cid)}" for value, cid in info.entries.items())


async def _listing(c: Coordinator, me: Principal) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for project, workflows in await catalog(c.store, me):
        uses: dict[str, list[dict[str, str]]] = {}
        for stored in workflows:
            w = stored.workflow
            for job in w.jobs:
                if job.keychain_id:
                    use = {"workflow_id": w.id, "workflow": w.name, "job": job.name or job.id[:8]}
                    uses.setdefault(job.keychain_id, []).append(use)
        credentials = await c.store.list_credentials(project.id)
        names = {info.id: info.name for info in credentials}
        items = [
            {"info": info, "uses": uses.get(info.id, []), "text": entries_text(info, credentials)}
            for info in await c.store.list_keychains(project.id)
        ]
        out.append(
            {"project": project, "keychains": items, "credentials": credentials, "names": names}
        )
    return out


async def _page(
    request: Request, me: Principal, problem: Problem | None = None, done: str | None = None
) -> HTMLResponse:
    """Forms only where the caller manages credentials (admins)."""
    c: Coordinator = request.app.state.coordinator
    projects = await _listing(c, me)
    notice = None
    if done in DONE:
        named = {k["info"].id: k["info"].name for p in projects for k in p["keychains"]}
        notice = DONE[done].format(name=named.get(request.query_params.get("id", ""), ""))
    return page(
        "keychains.html",
        problem.status if problem else 200,
        section="keychains",
        status=await status(c),
        me=me,
        projects=projects,
        problem=problem,
        notice=notice,
    )


@router.get("/keychains", response_class=HTMLResponse)
async def keychains(request: Request, me: Signed, done: str | None = None) -> Response:
    return await _page(request, me, done=done)


@router.post("/keychains/{project_id}", response_class=HTMLResponse)
async def create(
    request: Request,
    project_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    path: Annotated[str, Form()] = "",
    entries: Annotated[str, Form()] = "",
    default_credential_id: Annotated[str, Form()] = "",
) -> Response:
    return await _save(
        request,
        me,
        project_id,
        None,
        name,
        path,
        entries,
        default_credential_id,
        f"new:{project_id}",
    )


@router.post("/keychains/{project_id}/{keychain_id}", response_class=HTMLResponse)
async def change(
    request: Request,
    project_id: str,
    keychain_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    path: Annotated[str, Form()] = "",
    entries: Annotated[str, Form()] = "",
    default_credential_id: Annotated[str, Form()] = "",
) -> Response:
    """Its name, path, entries and default, replaced; runs already made keep their choice."""
    form = f"edit:{keychain_id}"
    return await _save(
        request, me, project_id, keychain_id, name, path, entries, default_credential_id, form
    )


async def _save(
    request: Request,
    me: Principal,
    project_id: str,
    keychain_id: str | None,
    name: str,
    path: str,
    entries: str,
    default_credential_id: str,
    form: str,
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    try:
        if keychain_id is not None:
            await _keychain(c, project_id, keychain_id)
        credentials = await c.store.list_credentials(project_id)
        document: dict[str, Any] = {
            "name": name.strip(),
            "path": path.strip(),
            "entries": read_entries(entries, credentials),
            "default_credential_id": default_credential_id or None,
        }
        if keychain_id is not None:
            document["id"] = keychain_id
        given = KeychainIn.model_validate(document)
        saved = await put_keychain(c.store, audit.actor(request, me), project_id, given.id, given)
    except (ValidationError, FulmenError) as error:
        return await _page(request, me, problem_of(form, error, FIELDS))
    what = "created" if keychain_id is None else "saved"
    return RedirectResponse(
        f"{PREFIX}/keychains?done={what}&id={saved.id}#keychain-{saved.id}", 303
    )


@router.post("/keychains/{project_id}/{keychain_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, project_id: str, keychain_id: str, me: Signed) -> Response:
    """Refused (409, saying which jobs) while a job names it."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    try:
        await _keychain(c, project_id, keychain_id)
        await remove_keychain(c.store, audit.actor(request, me), keychain_id)
    except FulmenError as error:
        return await _page(request, me, problem_of(f"delete:{keychain_id}", error, FIELDS))
    return RedirectResponse(f"{PREFIX}/keychains?done=deleted#project-{project_id}", 303)


async def _keychain(c: Coordinator, project_id: str, keychain_id: str) -> KeychainInfo:
    """The project's keychain of that id (NotFoundError otherwise)."""
    project = await c.store.get_project(project_id)
    info = await c.store.get_keychain(keychain_id)
    if info.project_id != project.id:
        raise NotFoundError(f"keychain {keychain_id} does not exist in project {project.name}")
    return info
