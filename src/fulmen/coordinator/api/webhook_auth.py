"""Webhook auth methods (issue 8): a project's API keys and Basic logins, and which of them
each webhook trigger takes. Secrets are write-only (an API key made by the coordinator is
shown once, in the answer that made it); the check itself is coordinator/webhook_auth.py's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

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
from fulmen.store import Store

__all__ = ["router"]

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
    made = await _store(request).create_webhook_auth_method(method.to_store(project_id))
    return WebhookAuthMethodDoc.of(made)


@router.get("/webhook_auth_methods/{method_id}", tags=["webhook auth"])
async def get_method(request: Request, me: Caller, method_id: PathId) -> WebhookAuthMethodDoc:
    await require_on(_store(request), me, Permission.READ, "webhook_auth_method", method_id)
    return WebhookAuthMethodDoc.of(await _store(request).get_webhook_auth_method(method_id))


@router.delete("/webhook_auth_methods/{method_id}", tags=["webhook auth"], status_code=204)
async def delete_method(request: Request, me: Caller, method_id: PathId) -> Response:
    """Deletes it from every trigger too; a trigger left with none is open again."""
    await require_on(_store(request), me, Permission.MANAGE, "webhook_auth_method", method_id)
    await _store(request).delete_webhook_auth_method(method_id)
    return Response(status_code=204)


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
    methods = await _store(request).set_trigger_auth_methods(trigger_id, body.method_ids)
    return PageDoc(items=[WebhookAuthMethodDoc.of(m) for m in methods])
