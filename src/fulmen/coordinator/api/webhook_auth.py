"""Webhook auth methods (issue 8): a project's API keys and Basic logins, and which of them
each webhook trigger takes. Secrets are write-only (an API key made by the coordinator is
shown once, in the answer that made it); the check itself is coordinator/webhook_auth.py's.

:func:`add_method`, :func:`remove_method` and :func:`set_methods` are how they change, here
and on the dashboard's trigger page (dashboard/triggers.py), each with its audit record
(names and kinds of methods, never a secret) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.api.schemas.webhook_auth import (
    TriggerAuthIn,
    WebhookAuthMethodDoc,
    WebhookAuthMethodIn,
)
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project
from fulmen.store import Actor, Store, Target, WebhookAuthMethod

__all__ = ["add_method", "remove_method", "router", "set_methods"]

router = APIRouter()


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


@router.get("/projects/{project_id}/webhook_auth_methods", tags=["webhook auth"])
async def list_methods(
    request: Request, me: Caller, project_id: PathId
) -> PageDoc[WebhookAuthMethodDoc]:
    store = _store(request)
    await require_project(store, me, Permission.READ, project_id)
    await store.get_project(project_id)
    methods = await store.list_webhook_auth_methods(project_id)
    return PageDoc(items=[WebhookAuthMethodDoc.of(m) for m in methods])


@router.post("/projects/{project_id}/webhook_auth_methods", tags=["webhook auth"], status_code=201)
async def create_method(
    request: Request, me: Caller, project_id: PathId, method: WebhookAuthMethodIn
) -> WebhookAuthMethodDoc:
    """A new method; an ``api`` method's key is in the answer, and never again."""
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    made = await add_method(_store(request), audit.actor(request, me), project_id, method)
    return WebhookAuthMethodDoc.of(made)


async def add_method(
    store: Store, by: Actor, project_id: str, method: WebhookAuthMethodIn
) -> WebhookAuthMethod:
    """Make a method of ``project_id`` (NotFoundError: no such project), recorded as
    ``webhook_auth_method.created``; the answer carries an ``api`` method's key."""
    async with store.together():
        made = await store.create_webhook_auth_method(method.to_store(project_id))
        await audit.record(
            store,
            by,
            "webhook_auth_method.created",
            Target("webhook_auth_method", made.id, made.name),
            project_id=project_id,
            after=audit.method_document(made),
        )
    return made


@router.get("/webhook_auth_methods/{method_id}", tags=["webhook auth"])
async def get_method(request: Request, me: Caller, method_id: PathId) -> WebhookAuthMethodDoc:
    await require_on(_store(request), me, Permission.READ, "webhook_auth_method", method_id)
    return WebhookAuthMethodDoc.of(await _store(request).get_webhook_auth_method(method_id))


@router.delete("/webhook_auth_methods/{method_id}", tags=["webhook auth"], status_code=204)
async def delete_method(request: Request, me: Caller, method_id: PathId) -> Response:
    """Deletes it from every trigger too; a trigger left with none is open again."""
    await require_on(_store(request), me, Permission.MANAGE, "webhook_auth_method", method_id)
    await remove_method(_store(request), audit.actor(request, me), method_id)
    return Response(status_code=204)


async def remove_method(store: Store, by: Actor, method_id: str) -> None:
    """Delete a method (and detach it from every trigger), recorded as
    ``webhook_auth_method.deleted``."""
    current = await store.get_webhook_auth_method(method_id)
    async with store.together():
        await store.delete_webhook_auth_method(method_id)
        await audit.record(
            store,
            by,
            "webhook_auth_method.deleted",
            Target("webhook_auth_method", current.id, current.name),
            project_id=current.project_id,
            before=audit.method_document(current),
        )


@router.get("/triggers/{trigger_id}/webhook_auth_methods", tags=["webhook auth"])
async def list_trigger_methods(
    request: Request, me: Caller, trigger_id: PathId
) -> PageDoc[WebhookAuthMethodDoc]:
    await require_on(_store(request), me, Permission.READ, "trigger", trigger_id)
    methods = await _store(request).list_trigger_auth_methods(trigger_id)
    return PageDoc(items=[WebhookAuthMethodDoc.of(m) for m in methods])


@router.put("/triggers/{trigger_id}/webhook_auth_methods", tags=["webhook auth"])
async def set_trigger_methods(
    request: Request, me: Caller, trigger_id: PathId, body: TriggerAuthIn
) -> PageDoc[WebhookAuthMethodDoc]:
    """The methods the trigger takes from now on (any one will do); ``[]`` opens it."""
    await require_on(_store(request), me, Permission.MANAGE, "trigger", trigger_id)
    by = audit.actor(request, me)
    methods = await set_methods(_store(request), by, trigger_id, body.method_ids)
    return PageDoc(items=[WebhookAuthMethodDoc.of(m) for m in methods])


async def set_methods(
    store: Store, by: Actor, trigger_id: str, method_ids: Sequence[str]
) -> list[WebhookAuthMethod]:
    """Set the methods a webhook trigger takes, recorded as ``trigger.auth_methods_changed``
    with the methods before and after (by id and name)."""
    info = await store.get_trigger(trigger_id)
    before = await store.list_trigger_auth_methods(trigger_id)
    async with store.together():
        after = await store.set_trigger_auth_methods(trigger_id, method_ids)
        await audit.record(
            store,
            by,
            "trigger.auth_methods_changed",
            Target("trigger", trigger_id, info.trigger.type.value),
            project_id=info.project_id,
            before={"workflow_id": info.workflow_id, "methods": _named(before)},
            after={"workflow_id": info.workflow_id, "methods": _named(after)},
        )
    return after


def _named(methods: list[WebhookAuthMethod]) -> list[dict[str, str]]:
    return [{"id": m.id, "name": m.name} for m in methods]
