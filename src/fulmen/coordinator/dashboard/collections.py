"""``/ui/collections``: each project's collections with their item counts, and one
collection's items, searched by a key pattern (``patient-*``) and paged with a cursor; an
item's whole value on a page of its own; forms to create and delete a collection and to
delete an item (editors and stronger, as the REST API: viewers browse).

Creating and deleting a collection go through ``api.collections``' functions (the API's
own refusals and audit records); deleting an item through the store, as the job-facing API
does. A value can be up to a megabyte: the list shows the start of each, the item's page all
of it.
"""

from __future__ import annotations

import json
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal
from fulmen.coordinator.api.collections import find_collection, make_collection, remove_collection
from fulmen.coordinator.api.schemas.collections import CollectionIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded, Problem, cross_site, problem_of, refusal
from fulmen.coordinator.dashboard.pages import catalog, status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed
from fulmen.coordinator.guard import require_project
from fulmen.errors import FulmenError, InputError
from fulmen.store import CollectionInfo, ItemFilter
from fulmen.store.paging import decode_cursor, encode_cursor

__all__ = ["PAGE", "PREVIEW", "router"]

router = APIRouter(route_class=Guarded)
#: Items on a page of a collection.
PAGE: Final = 50
#: Characters of a value the list shows.
PREVIEW: Final = 160
FIELDS: Final = ("name", "key")
DONE: Final = {
    "created": "Collection {name} created.",
    "deleted": "Collection {name} deleted, with its items.",
    "item_deleted": "Item {key} deleted.",
}


@router.get("/collections", response_class=HTMLResponse)
async def collections(request: Request, me: Signed, done: str | None = None) -> Response:
    return await _list_page(request, me, done=done)


@router.post("/collections/{project_id}", response_class=HTMLResponse)
async def create(
    request: Request, project_id: str, me: Signed, name: Annotated[str, Form()] = ""
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.EDIT, project_id)
    try:
        given = CollectionIn.model_validate({"name": name.strip()})
        await c.store.get_project(project_id)
        made = await make_collection(c.store, audit.actor(request, me), project_id, given.name)
    except (ValidationError, FulmenError) as error:
        return await _list_page(request, me, problem_of(f"new:{project_id}", error, FIELDS))
    return RedirectResponse(f"{PREFIX}/collections/{made.name}?done=created", 303)


@router.get("/collections/{name}", response_class=HTMLResponse)
async def collection(
    request: Request,
    name: str,
    me: Signed,
    key: str = "",
    cursor: str = "",
    done: str | None = None,
) -> Response:
    c: Coordinator = request.app.state.coordinator
    found = await find_collection(c.store, me, Permission.READ, name)
    return await _items_page(request, me, found, key, cursor, done=done)


@router.get("/collections/{name}/item", response_class=HTMLResponse)
async def item(request: Request, name: str, me: Signed, key: str = "") -> Response:
    """One item's whole value, indented when it is JSON."""
    c: Coordinator = request.app.state.coordinator
    found = await find_collection(c.store, me, Permission.READ, name)
    held = await c.store.get_collection_item(found.id, key)
    return page(
        "collection_item.html",
        200 if held is not None else 404,
        section="collections",
        status=await status(c),
        me=me,
        collection=found,
        key=key,
        item=held,
        shown=None if held is None else _indented(held.value),
    )


@router.post("/collections/{name}/delete", response_class=HTMLResponse)
async def delete(request: Request, name: str, me: Signed) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    found = await find_collection(c.store, me, Permission.EDIT, name)
    await remove_collection(c.store, audit.actor(request, me), found)
    return RedirectResponse(
        f"{PREFIX}/collections?done=deleted&name={name}#project-{found.project_id}", 303
    )


@router.post("/collections/{name}/items/delete", response_class=HTMLResponse)
async def delete_item(
    request: Request, name: str, me: Signed, key: Annotated[str, Form()] = ""
) -> Response:
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    found = await find_collection(c.store, me, Permission.EDIT, name)
    await c.store.delete_collection_item(found.id, key)
    return RedirectResponse(f"{PREFIX}/collections/{name}?done=item_deleted", 303)


async def _list_page(
    request: Request, me: Principal, problem: Problem | None = None, done: str | None = None
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    projects = []
    for project, _ in await catalog(c.store, me):
        listed: list[CollectionInfo] = []
        cursor = None
        while True:  # a project has tens of collections, not thousands
            got = await c.store.list_collections(project.id, cursor=cursor, limit=500)
            listed += got.items
            if (cursor := got.next_cursor) is None:
                break
        projects.append({"project": project, "collections": listed})
    notice = None
    if done in DONE:
        notice = DONE[done].format(name=request.query_params.get("name", ""), key="")
    return page(
        "collections.html",
        problem.status if problem else 200,
        section="collections",
        status=await status(c),
        me=me,
        projects=projects,
        problem=problem,
        notice=notice,
    )


async def _items_page(
    request: Request,
    me: Principal,
    found: CollectionInfo,
    pattern: str,
    cursor: str,
    done: str | None = None,
) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    problem = None
    after = 0
    if cursor:
        try:
            after = int(decode_cursor(cursor, int)[0])
        except InputError as error:
            problem = problem_of("search", error, FIELDS)
    where = ItemFilter(pattern=pattern or None, after_id=after)
    items = await c.store.list_collection_items(found.id, where, PAGE + 1)
    following = encode_cursor(items[PAGE - 1].id) if len(items) > PAGE else None
    notice = DONE["created"].format(name=found.name) if done == "created" else None
    if done == "item_deleted":
        notice = "Item deleted."
    return page(
        "collection.html",
        problem.status if problem else 200,
        section="collections",
        status=await status(c),
        me=me,
        collection=found,
        items=items[:PAGE],
        pattern=pattern,
        following=following,
        first_page=not cursor,
        preview=PREVIEW,
        problem=problem,
        notice=notice,
    )


def _indented(value: str) -> str:
    """The value indented when it is JSON (what a job's adaptor writes), else as it is."""
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value
