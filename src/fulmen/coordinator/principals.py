"""Who a request acts as: the :class:`~fulmen.coordinator.access.Principal` of an API token
or of a dashboard session, read from the store once per request (roles change take effect
at once: nothing is cached between requests). Once read, it is kept in the request's ASGI
scope (:data:`SCOPE_KEY`), where what runs later in the same request finds it
(:func:`kept`: the audit trail's record of a refusal)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fulmen.coordinator.access import Principal
from fulmen.errors import NotFoundError
from fulmen.store import ApiToken, DashboardSession, Store, User

__all__ = ["SCOPE_KEY", "kept", "of_session", "of_token", "of_user"]

#: Where a request's principal is kept in its ASGI scope, once the API's token check or the
#: dashboard's session check has read it.
SCOPE_KEY: Final = "fulmen.principal"


def kept(scope: Mapping[str, Any]) -> Principal | None:
    """The principal kept in a request's scope, if its check has run."""
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None


async def of_user(store: Store, user: User, *, token_id: str | None = None) -> Principal:
    roles = {} if user.instance_admin else await store.roles_of(user.id)
    return Principal(
        kind="user",
        id=user.id,
        name=user.email,
        instance_admin=user.instance_admin,
        roles=roles,
        token_id=token_id,
    )


async def of_token(store: Store, token: ApiToken) -> Principal | None:
    """What ``token`` acts as; ``None`` if its user is disabled or gone."""
    if token.user_id is not None:
        try:
            user = await store.get_user(token.user_id)
        except NotFoundError:
            return None
        return await of_user(store, user, token_id=token.id) if user.active else None
    if token.project_id is not None and token.role is not None:
        return Principal(
            kind="service",
            id=token.id,
            name=token.name,
            roles={token.project_id: token.role},
            token_id=token.id,
        )
    return Principal(
        kind="operator", id=token.id, name=token.name, instance_admin=True, token_id=token.id
    )


async def of_session(store: Store, session: DashboardSession) -> Principal | None:
    """What a live session acts as; ``None`` if its user or token is gone."""
    try:
        if session.user_id is not None:
            user = await store.get_user(session.user_id)
            return await of_user(store, user) if user.active else None
        assert session.token_id is not None
        return await of_token(store, await store.get_api_token(session.token_id))
    except NotFoundError:
        return None
