"""Keychains of a project (issue 19): listed by its members, changed by its admins (as its
credentials are: access.py, MANAGE), each change recorded as ``keychain.*`` in the audit trail.

:func:`put_keychain` and :func:`remove_keychain` are how a keychain is changed, here and on
the dashboard's keychain pages (dashboard/keychains.py): one path, the same checks and
errors, the same record. What a keychain is and when it chooses: store/keychains.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.api.schemas.keychains import KeychainDoc, KeychainIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project
from fulmen.errors import NotFoundError
from fulmen.store import Actor, KeychainInfo, Store

__all__ = ["put_keychain", "remove_keychain", "router"]

router = APIRouter()


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


@router.get("/projects/{project_id}/keychains", tags=["keychains"])
async def list_keychains(request: Request, me: Caller, project_id: PathId) -> PageDoc[KeychainDoc]:
    """The project's keychains: their paths and the ids of the credentials they pick."""
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    await store.get_project(project_id)
    return PageDoc(items=[KeychainDoc.of(k) for k in await store.list_keychains(project_id)])


@router.post("/projects/{project_id}/keychains", tags=["keychains"], status_code=201)
async def create_keychain(
    request: Request, me: Caller, project_id: PathId, keychain: KeychainIn
) -> KeychainDoc:
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return KeychainDoc.of(
        await put_keychain(_store(request), by, project_id, keychain.id, keychain)
    )


@router.get("/keychains/{keychain_id}", tags=["keychains"])
async def get_keychain(request: Request, me: Caller, keychain_id: PathId) -> KeychainDoc:
    await require_on(_store(request), me, Permission.READ, "keychain", keychain_id)
    return KeychainDoc.of(await _store(request).get_keychain(keychain_id))


@router.put("/projects/{project_id}/keychains/{keychain_id}", tags=["keychains"])
async def replace_keychain(
    request: Request, me: Caller, project_id: PathId, keychain_id: PathId, keychain: KeychainIn
) -> KeychainDoc:
    """Create the keychain with this id, or replace its name, path, entries and default. Runs
    made from then on choose with it; a run already made keeps what it chose."""
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return KeychainDoc.of(
        await put_keychain(_store(request), by, project_id, keychain_id, keychain)
    )


@router.delete("/keychains/{keychain_id}", tags=["keychains"], status_code=204)
async def delete_keychain(request: Request, me: Caller, keychain_id: PathId) -> Response:
    """409 while a job names it."""
    await require_on(_store(request), me, Permission.MANAGE, "keychain", keychain_id)
    await remove_keychain(_store(request), audit.actor(request, me), keychain_id)
    return Response(status_code=204)


async def put_keychain(
    store: Store, by: Actor, project_id: str, keychain_id: str, keychain: KeychainIn
) -> KeychainInfo:
    """Create the keychain, or replace it (NotFoundError for a project that does not exist;
    store/keychains.py: put_keychain for the rest); recorded as ``keychain.created`` or
    ``keychain.updated``."""
    await store.get_project(project_id)
    try:
        current: KeychainInfo | None = await store.get_keychain(keychain_id)
    except NotFoundError:
        current = None
    if current is not None and current.project_id != project_id:
        current = None  # the store refuses it: another project's (409)
    async with store.together():
        saved = await store.put_keychain(keychain.to_store(project_id, keychain_id))
        await store.append_audit(audit.keychain_change(by, current, saved))
    return saved


async def remove_keychain(store: Store, by: Actor, keychain_id: str) -> None:
    """Delete the keychain (ConflictError while a job names it), recorded as
    ``keychain.deleted``."""
    current = await store.get_keychain(keychain_id)
    async with store.together():
        await store.delete_keychain(keychain_id)
        await store.append_audit(audit.keychain_change(by, current, None))
