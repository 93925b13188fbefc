"""The instance's settings (issue 18), for instance admins only: ``GET`` and ``PUT
/api/instance/settings``. A user's personal token acts with that user's rights, so a token
of an instance admin may change them; a service token never may (access.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request

from fulmen.coordinator import audit
from fulmen.coordinator.access import require_instance_admin
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.instance import InstanceSettingsDoc, InstanceSettingsIn
from fulmen.coordinator.core import Coordinator
from fulmen.store import Actor, InstanceSettings, Store, Target

__all__ = ["change", "router"]

router = APIRouter()


@router.get("/instance/settings", tags=["instance"])
async def get_settings(request: Request, me: Caller) -> InstanceSettingsDoc:
    require_instance_admin(me, "reading the instance's settings")
    c: Coordinator = request.app.state.coordinator
    return InstanceSettingsDoc.of(await c.store.get_instance_settings())


@router.put("/instance/settings", tags=["instance"])
async def put_settings(
    request: Request, me: Caller, body: InstanceSettingsIn
) -> InstanceSettingsDoc:
    """Change the settings the body names; the answer holds them all."""
    require_instance_admin(me, "changing the instance's settings")
    c: Coordinator = request.app.state.coordinator
    changes = body.model_dump(exclude_none=True)
    return InstanceSettingsDoc.of(await change(c.store, audit.actor(request, me), changes))


async def change(store: Store, by: Actor, changes: dict[str, Any]) -> InstanceSettings:
    """Set the settings ``changes`` names, with its audit record (``instance_settings.updated``,
    before and after): the one way to, for the API and the dashboard's instance page."""
    before = await store.get_instance_settings()
    async with store.together():
        after = await store.set_instance_settings(changes)
        await audit.record(
            store,
            by,
            "instance_settings.updated",
            Target("instance_settings", "instance", "the instance's settings"),
            before=dataclasses.asdict(before),
            after=dataclasses.asdict(after),
        )
    return after
