"""The instance's settings (issue 18), for instance admins only: ``GET`` and ``PUT
/api/instance/settings``. A user's personal token acts with that user's rights, so a token
of an instance admin may change them; a service token never may (access.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from fulmen.coordinator.access import Principal, require_instance_admin
from fulmen.coordinator.api.auth import authorized
from fulmen.coordinator.api.schemas.instance import InstanceSettingsDoc, InstanceSettingsIn
from fulmen.coordinator.core import Coordinator

__all__ = ["router"]

router = APIRouter()

Caller = Annotated[Principal, Depends(authorized)]


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
    return InstanceSettingsDoc.of(await c.store.set_instance_settings(changes))
