"""Inviting people (issue 18): who may invite whom to what, and the link that is the
invitation. No e-mail server is involved: the one who invites passes the link on.

The link holds 32 random bytes; the store keeps their SHA-256 (store/invitations.py), so the
link is shown once, in the answer that made it. It can be used once, for
``FULMEN_INVITATION_TTL_SECONDS`` (7 days), at ``/ui/invitations/<secret>`` (the dashboard's
page: dashboard/invitations.py).

Who may invite (access.py's words): an invitation giving a role in a project takes what giving
that role to a member takes (access.require_grant: ``members`` there, and no role stronger
than one's own; an owner is made by owners); one making an instance admin, or giving no role
at all (a user of the instance with no project yet), takes an instance admin.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Final

from fulmen.coordinator import audit
from fulmen.coordinator.access import (
    Permission,
    Principal,
    require,
    require_grant,
    require_instance_admin,
)
from fulmen.coordinator.core import Coordinator
from fulmen.store import Actor, Invitation, NewInvitation, Target

__all__ = ["LINK_PATH", "digest_of", "invite", "link", "require_may_invite", "revoke"]

#: Where an invitation is opened: the dashboard's page, under its prefix.
LINK_PATH: Final = "/ui/invitations/"
#: Random bytes in an invitation's secret (URL-safe base64 in the link).
SECRET_BYTES: Final = 32


def digest_of(secret: str) -> str:
    """What the store keeps of an invitation's secret, and finds it by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def link(base_url: str, secret: str) -> str:
    """The invitation's link on the coordinator at ``base_url``."""
    return base_url.rstrip("/") + LINK_PATH + secret


def require_may_invite(principal: Principal, new: NewInvitation) -> None:
    """Raise unless ``principal`` may make the invitation ``new``.

    Raises:
        AccessError: see the module docstring.
    """
    if new.instance_admin:
        require_instance_admin(principal, "inviting an instance admin")
    if new.project_id is None:
        require_instance_admin(principal, "inviting someone to no project")
        return
    if new.role is None:  # no role to give: the store refuses it (bad_invitation), past this
        require(principal, Permission.MEMBERS, new.project_id)
    else:
        require_grant(principal, new.role, new.project_id)


async def invite(
    c: Coordinator, principal: Principal, by: Actor, new: NewInvitation
) -> tuple[str, Invitation]:
    """Make an invitation from ``principal`` (``new.invited_by`` is set here), recorded in
    the audit trail as ``by``'s: its secret (for the link, shown once) and the stored
    invitation.

    Raises:
        AccessError: see :func:`require_may_invite`.
        InputError, NotFoundError, ConflictError: see store/invitations.py.
    """
    require_may_invite(principal, new)
    # Whoever invites is on record; an operator's or a service token is no user.
    new = replace(new, invited_by=principal.id if principal.kind == "user" else None)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    expires_at = c.clock.now() + timedelta(seconds=c.settings.invitation_ttl)
    async with c.store.together():
        made = await c.store.create_invitation(new, digest_of(secret), expires_at)
        await audit.record(
            c.store,
            by,
            "invitation.created",
            Target("invitation", made.digest, made.email),
            project_id=made.project_id,
            after=audit.invitation_document(made),
        )
    return secret, made


async def revoke(c: Coordinator, principal: Principal, by: Actor, digest: str) -> Invitation:
    """Revoke an invitation (an instance admin only), as ``by``: the one way to, for the API
    and the users page.

    Raises:
        AccessError: ``principal`` is no instance admin.
        NotFoundError: no such invitation (used or expired ones are kept, and may be).
    """
    require_instance_admin(principal, "revoking invitations")
    async with c.store.together():
        gone = await c.store.delete_invitation(digest)
        await audit.record(
            c.store,
            by,
            "invitation.revoked",
            Target("invitation", gone.digest, gone.email),
            project_id=gone.project_id,
            before=audit.invitation_document(gone),
        )
    return gone
