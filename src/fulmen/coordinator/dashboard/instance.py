"""``/ui/instance``: the instance's settings, for instance admins (issue 18): whether every
user signing in with a password needs a second factor, and how single sign-on is set up
(the redirect URI to register with the provider). Saved as ``PUT /api/instance/settings``
saves them, through the store's ``set_instance_settings``."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Principal, require_instance_admin
from fulmen.coordinator.api.instance import change
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard import sso
from fulmen.coordinator.dashboard.forms import Guarded, cross_site, refusal
from fulmen.coordinator.dashboard.pages import status
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed

__all__ = ["router"]

router = APIRouter(route_class=Guarded)

DONE: Final = {"saved": "Instance settings saved."}


async def _page(request: Request, me: Principal) -> HTMLResponse:
    c: Coordinator = request.app.state.coordinator
    require_instance_admin(me, "the instance's settings")
    configured = sso.client(request)
    return page(
        "instance.html",
        section="instance",
        status=await status(c),
        settings=await c.store.get_instance_settings(),
        sso=configured.settings if configured else None,
        redirect_uri=sso.redirect_uri(request),
        problem=None,
        notice=DONE.get(request.query_params.get("done", "")),
    )


@router.get("/instance", response_class=HTMLResponse)
async def instance(request: Request, me: Signed) -> Response:
    return await _page(request, me)


@router.post("/instance", response_class=HTMLResponse)
async def save(request: Request, me: Signed, require_mfa: Annotated[str, Form()] = "") -> Response:
    """``require_mfa`` is a checkbox: present (any value) is on."""
    if cross_site(request):
        return refusal()
    require_instance_admin(me, "changing the instance's settings")
    c: Coordinator = request.app.state.coordinator
    await change(c.store, audit.actor(request, me), {"require_mfa": bool(require_mfa)})
    return RedirectResponse(f"{PREFIX}/instance?done=saved", 303)
