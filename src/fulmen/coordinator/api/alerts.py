"""Failure alerts (issue 18): a project's channels (e-mail, webhook) with how their
deliveries are going, each workflow's alert rule, the project's digest, and what was sent.

Every route is under ``/projects/{project_id}``, and every id in it must belong to that
project (404 naming the field otherwise), so that the project whose rights a request needs
is the one in its path: changing a workflow's rule is a change to that project's workflows,
changing its channels a change to the project's settings: reading takes the viewer role, a
rule the editor role, channels and the digest the admin role (access.py). A webhook channel's
secret is write-only (a made one is shown once, in the answer that made it).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from fulmen.coordinator import alert_settings, audit
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.alerts import (
    AlertChannelDoc,
    AlertChannelIn,
    AlertDeliveryDoc,
    AlertDigestDoc,
    AlertDigestIn,
    AlertDoc,
    AlertRuleDoc,
    AlertRuleIn,
)
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_project
from fulmen.errors import NotFoundError
from fulmen.store import Store

__all__ = ["router"]

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=500)]
Failing = Annotated[bool, Query(description="only deliveries retrying or given up")]
TAGS: list[str | Enum] = ["alerts"]


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


# -- channels (the project's settings) ---------------------------------------------------------


@router.get("/projects/{project_id}/alert_channels", tags=TAGS)
async def list_channels(
    request: Request, me: Caller, project_id: PathId
) -> PageDoc[AlertChannelDoc]:
    await require_project(_store(request), me, Permission.READ, project_id)
    channels = await _store(request).list_alert_channels(project_id)
    return PageDoc(items=[AlertChannelDoc.of(c) for c in channels])


@router.post("/projects/{project_id}/alert_channels", tags=TAGS, status_code=201)
async def create_channel(
    request: Request, me: Caller, project_id: PathId, channel: AlertChannelIn
) -> AlertChannelDoc:
    """A new channel; a ``webhook`` channel's secret is in the answer, and never again."""
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    c: Coordinator = request.app.state.coordinator
    made = await alert_settings.create_channel(
        c.store, by, channel.to_store(project_id), c.outbound.policy
    )
    return AlertChannelDoc.of(made)


@router.get("/projects/{project_id}/alert_channels/{channel_id}", tags=TAGS)
async def get_channel(
    request: Request, me: Caller, project_id: PathId, channel_id: PathId
) -> AlertChannelDoc:
    await require_project(_store(request), me, Permission.READ, project_id)
    return AlertChannelDoc.of(await _store(request).get_alert_channel(project_id, channel_id))


@router.delete("/projects/{project_id}/alert_channels/{channel_id}", tags=TAGS, status_code=204)
async def delete_channel(
    request: Request, me: Caller, project_id: PathId, channel_id: PathId
) -> Response:
    """Deletes it from every rule and digest, with its deliveries."""
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    await alert_settings.delete_channel(_store(request), by, project_id, channel_id)
    return Response(status_code=204)


@router.get("/projects/{project_id}/alert_channels/{channel_id}/deliveries", tags=TAGS)
async def channel_deliveries(
    request: Request,
    me: Caller,
    project_id: PathId,
    channel_id: PathId,
    failing: Failing = False,
    limit: Limit = 50,
) -> PageDoc[AlertDeliveryDoc]:
    """The channel's deliveries, newest first: each one's state, attempts, last error and
    next try."""
    await require_project(_store(request), me, Permission.READ, project_id)
    store = _store(request)
    await store.get_alert_channel(project_id, channel_id)
    found = await store.list_alert_deliveries(
        project_id, channel_id=channel_id, failing=failing, limit=limit
    )
    return PageDoc(items=[AlertDeliveryDoc.of(d) for d in found])


@router.get("/projects/{project_id}/alert_deliveries", tags=TAGS)
async def deliveries(
    request: Request, me: Caller, project_id: PathId, failing: Failing = False, limit: Limit = 50
) -> PageDoc[AlertDeliveryDoc]:
    await require_project(_store(request), me, Permission.READ, project_id)
    store = _store(request)
    await store.get_project(project_id)
    found = await store.list_alert_deliveries(project_id, failing=failing, limit=limit)
    return PageDoc(items=[AlertDeliveryDoc.of(d) for d in found])


@router.get("/projects/{project_id}/alerts", tags=TAGS)
async def alerts(
    request: Request,
    me: Caller,
    project_id: PathId,
    workflow_id: Annotated[str | None, Query(min_length=1)] = None,
    limit: Limit = 50,
) -> PageDoc[AlertDoc]:
    """Alerts and digests made, newest first; of one workflow."""
    await require_project(_store(request), me, Permission.READ, project_id)
    store = _store(request)
    await store.get_project(project_id)
    made = await store.list_alerts(project_id, workflow_id=workflow_id, limit=limit)
    return PageDoc(items=[AlertDoc.of(a) for a in made])


@router.get("/projects/{project_id}/alert_digest", tags=TAGS)
async def get_digest(request: Request, me: Caller, project_id: PathId) -> AlertDigestDoc:
    await require_project(_store(request), me, Permission.READ, project_id)
    return AlertDigestDoc.of(await _store(request).get_alert_digest(project_id))


@router.put("/projects/{project_id}/alert_digest", tags=TAGS)
async def put_digest(
    request: Request, me: Caller, project_id: PathId, digest: AlertDigestIn
) -> AlertDigestDoc:
    await require_project(_store(request), me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    saved = await alert_settings.put_digest(_store(request), by, digest.to_store(project_id))
    return AlertDigestDoc.of(saved)


# -- workflows' rules (the project's workflows) -------------------------------------------------


@router.get("/projects/{project_id}/alert_rules", tags=TAGS)
async def list_rules(request: Request, me: Caller, project_id: PathId) -> PageDoc[AlertRuleDoc]:
    await require_project(_store(request), me, Permission.READ, project_id)
    store = _store(request)
    await store.get_project(project_id)
    return PageDoc(items=[AlertRuleDoc.of(r) for r in await store.list_alert_rules(project_id)])


@router.get("/projects/{project_id}/workflows/{workflow_id}/alert_rule", tags=TAGS)
async def get_rule(
    request: Request, me: Caller, project_id: PathId, workflow_id: PathId
) -> AlertRuleDoc:
    """404 ``not_found`` with ``field: workflow_id`` when the workflow has no rule."""
    await require_project(_store(request), me, Permission.READ, project_id)
    rule = await _store(request).get_alert_rule(project_id, workflow_id)
    if rule is None:
        raise NotFoundError(f"workflow {workflow_id} has no alert rule", field="workflow_id")
    return AlertRuleDoc.of(rule)


@router.put("/projects/{project_id}/workflows/{workflow_id}/alert_rule", tags=TAGS)
async def put_rule(
    request: Request, me: Caller, project_id: PathId, workflow_id: PathId, rule: AlertRuleIn
) -> AlertRuleDoc:
    """The rule from now on; its period counts from its latest alert, whatever it was."""
    await require_project(_store(request), me, Permission.EDIT, project_id)
    by = audit.actor(request, me)
    saved = await alert_settings.put_rule(
        _store(request), by, rule.to_store(project_id, workflow_id)
    )
    return AlertRuleDoc.of(saved)


@router.delete(
    "/projects/{project_id}/workflows/{workflow_id}/alert_rule", tags=TAGS, status_code=204
)
async def delete_rule(
    request: Request, me: Caller, project_id: PathId, workflow_id: PathId
) -> Response:
    await require_project(_store(request), me, Permission.EDIT, project_id)
    by = audit.actor(request, me)
    await alert_settings.delete_rule(_store(request), by, project_id, workflow_id)
    return Response(status_code=204)
