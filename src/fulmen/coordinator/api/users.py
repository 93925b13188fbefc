"""Users and invitations (issue 18): an instance admin lists users, disables and enables
them, and makes and unmakes instance admins; invitations are made by whoever may give what
they give (coordinator/invitations.py), listed and revoked by an instance admin.

:func:`change_user` is how a user is changed, here and on the dashboard's users page
(dashboard/users.py): one path, one set of refusals.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit, invitations
from fulmen.coordinator.access import Principal, require_instance_admin
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.api.schemas.users import (
    InvitationDoc,
    InvitationIn,
    UserDoc,
    UserPatch,
)
from fulmen.coordinator.core import Coordinator
from fulmen.store import Actor, Target, User

__all__ = ["change_user", "router"]

router = APIRouter()


def _coordinator(request: Request) -> Coordinator:
    c: Coordinator = request.app.state.coordinator
    return c


async def change_user(
    c: Coordinator,
    principal: Principal,
    by: Actor,
    user_id: str,
    *,
    disabled: bool | None = None,
    instance_admin: bool | None = None,
    second_factor: bool | None = None,
) -> User:
    """Disable or enable a user, make or unmake them an instance admin (``None``: as is),
    recorded in the audit trail as ``by``'s (``user.updated``, before and after); remove
    their second factor (``second_factor=False``: a lost phone and lost recovery codes; they
    sign in with their password and enrol again), recorded as ``user.second_factor_removed``.

    Raises:
        AccessError: ``principal`` is no instance admin.
        NotFoundError: no such user.
        ConflictError: ``last_admin``: the last active instance admin would be lost.
    """
    require_instance_admin(principal, "managing users")
    before = await c.store.get_user(user_id)
    user = before
    async with c.store.together():
        if instance_admin is not None and instance_admin != user.instance_admin:
            user = await c.store.set_instance_admin(user_id, instance_admin)
        if disabled is not None and disabled == user.active:
            user = await c.store.set_user_disabled(user_id, disabled)
        if user != before:
            await audit.record(
                c.store,
                by,
                "user.updated",
                Target("user", user.id, user.email),
                before=audit.user_document(before),
                after=audit.user_document(user),
            )
        removed = second_factor is False and user.totp_enabled
        if removed:
            await c.store.disable_totp(user_id)
            await audit.record(
                c.store, by, "user.second_factor_removed", Target("user", user.id, user.email)
            )
    # reads in the block may not see its own writes (Store.together)
    return await c.store.get_user(user_id) if removed else user


@router.get("/users", tags=["users"])
async def list_users(request: Request, caller: Caller) -> PageDoc[UserDoc]:
    """Every user of the instance (an instance admin only), by e-mail address."""
    require_instance_admin(caller, "listing users")
    users = await _coordinator(request).store.list_users()
    return PageDoc(items=[UserDoc.of(user) for user in users])


@router.patch("/users/{user_id}", tags=["users"])
async def patch_user(
    request: Request, user_id: PathId, patch: UserPatch, caller: Caller
) -> UserDoc:
    changed = await change_user(
        _coordinator(request),
        caller,
        audit.actor(request, caller),
        user_id,
        disabled=patch.disabled,
        instance_admin=patch.instance_admin,
        second_factor=patch.second_factor,
    )
    return UserDoc.of(changed)


@router.post("/invitations", tags=["users"], status_code=201)
async def create_invitation(
    request: Request, invitation: InvitationIn, caller: Caller
) -> InvitationDoc:
    """An invitation; its ``url`` is in this answer and never again (the link is the
    invitation: pass it on to the one invited)."""
    c = _coordinator(request)
    by = audit.actor(request, caller)
    secret, made = await invitations.invite(c, caller, by, invitation.to_store())
    return InvitationDoc.of(made, invitations.link(str(request.base_url), secret))


@router.get("/invitations", tags=["users"])
async def list_invitations(request: Request, caller: Caller) -> PageDoc[InvitationDoc]:
    """The invitations that can still be accepted (an instance admin only), newest first."""
    require_instance_admin(caller, "listing invitations")
    made = await _coordinator(request).store.list_invitations()
    return PageDoc(items=[InvitationDoc.of(invitation) for invitation in made])


@router.delete("/invitations/{invitation_id}", tags=["users"], status_code=204)
async def delete_invitation(request: Request, invitation_id: PathId, caller: Caller) -> Response:
    """Revoke an invitation (an instance admin only): its link opens nothing from now on."""
    c = _coordinator(request)
    await invitations.revoke(c, caller, audit.actor(request, caller), invitation_id)
    return Response(status_code=204)
