"""Collections (issue 19) as a project's people manage them: list a project's collections
with their item counts, make one, look one up, delete one with its items.

Items are not repeated here: ``/collections/<name>`` (coordinator/collections_api.py, the
routes jobs call, as Lightning has them) takes an API token as well as a run's token, with
the same roles (viewers read, editors write). One way to read and write items.

:func:`make_collection` and :func:`remove_collection` are how collections come and go, here
and on the dashboard's collections page (dashboard/collections.py), each with its audit
record (``collection.created``, ``collection.deleted``) in the same transaction.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal, require
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.catalog import Cursor, Limit
from fulmen.coordinator.api.schemas.collections import CollectionDoc, CollectionIn
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_project
from fulmen.errors import AccessError, NotFoundError
from fulmen.store import Actor, CollectionInfo, NewAuditRecord, Store, Target

__all__ = ["find_collection", "make_collection", "remove_collection", "router"]

router = APIRouter(tags=["collections"])


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


@router.get("/projects/{project_id}/collections")
async def list_collections(
    request: Request, me: Caller, project_id: PathId, cursor: Cursor = None, limit: Limit = 100
) -> PageDoc[CollectionDoc]:
    """The project's collections by name, with how many items each holds."""
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    await store.get_project(project_id)
    page = await store.list_collections(project_id, cursor=cursor, limit=limit)
    items = [CollectionDoc.of(c) for c in page.items]
    return PageDoc(items=items, next_cursor=page.next_cursor)


@router.post("/projects/{project_id}/collections", status_code=201)
async def create_collection(
    request: Request, me: Caller, project_id: PathId, body: CollectionIn
) -> CollectionDoc:
    """A new, empty collection; 409 ``collection_exists`` when the name is taken in any
    project (names are unique across the instance, so that ``/collections/<name>`` names one)."""
    store = _store(request)
    await require_project(store, me, Permission.EDIT, project_id)
    await store.get_project(project_id)
    made = await make_collection(store, audit.actor(request, me), project_id, body.name)
    return CollectionDoc.of(made)


@router.get("/collections/{name}")
async def get_collection(request: Request, me: Caller, name: PathId) -> CollectionDoc:
    return CollectionDoc.of(await find_collection(_store(request), me, Permission.READ, name))


@router.delete("/collections/{name}", status_code=204)
async def delete_collection(request: Request, me: Caller, name: PathId) -> Response:
    """Deletes the collection with all its items."""
    store = _store(request)
    found = await find_collection(store, me, Permission.EDIT, name)
    await remove_collection(store, audit.actor(request, me), found)
    return Response(status_code=204)


async def find_collection(
    store: Store, principal: Principal, permission: Permission, name: str
) -> CollectionInfo:
    """The collection named ``name`` if ``principal`` may do ``permission`` to it.

    Raises:
        AccessError: access.require's refusals, naming the collection: ``forbidden`` for a
            role too weak; ``not_a_member`` for another project's collection and, in the
            same words, for a name no collection has, so that whether another project has a
            collection of that name cannot be probed.
    """
    try:
        found = await store.get_collection(name)
    except NotFoundError:
        raise AccessError(
            f"collection {name} does not exist or you are not a member of its project",
            permission=permission,
            code="not_a_member",
        ) from None
    require(principal, permission, found.project_id, what=f"collection {name}")
    return found


async def make_collection(store: Store, by: Actor, project_id: str, name: str) -> CollectionInfo:
    """Make a collection of ``project_id``, recorded as ``collection.created``."""
    async with store.together():
        made = await store.create_collection(project_id, name)
        await audit.record(
            store,
            by,
            "collection.created",
            Target("collection", made.id, made.name),
            project_id=project_id,
            after=_document(made),
        )
    return made


async def remove_collection(store: Store, by: Actor, collection: CollectionInfo) -> None:
    """Delete a collection and its items, recorded as ``collection.deleted`` (with how many
    items went, never their values)."""
    record = NewAuditRecord(
        by,
        "collection.deleted",
        Target("collection", collection.id, collection.name),
        project_id=collection.project_id,
        before=_document(collection),
    )
    await store.delete_collection(collection.id, record=record)  # its items in batches


def _document(collection: CollectionInfo) -> dict[str, str | int]:
    return {"name": collection.name, "item_count": collection.item_count}
