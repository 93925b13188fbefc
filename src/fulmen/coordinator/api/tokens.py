"""API tokens (issue 18): a user's personal tokens, which act with the user's roles, and a
project's service tokens, which act in that project only with the role they were given.

A user makes, lists and revokes their own personal tokens; an instance admin sees and revokes
everyone's. A project's admins make its service tokens, with a role no stronger than their
own (access.require_grant). A service token makes no personal token and no project. A token
is shown once, in the answer that makes it. Each is made and revoked by api.auth's issue and
revoke, with its audit record.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fulmen.coordinator import audit
from fulmen.coordinator.access import Permission, Principal, require_grant
from fulmen.coordinator.api.auth import Caller, issue, revoke
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.api.schemas.teams import MadeTokenDoc, ServiceTokenIn, TokenDoc, TokenIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_project
from fulmen.errors import AccessError, NotFoundError
from fulmen.store import Actor, ApiToken, Role, Store

__all__ = [
    "make_personal",
    "make_service",
    "personal_tokens",
    "revoke_personal",
    "revoke_service",
    "router",
]

router = APIRouter(tags=["tokens"])


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


@router.get("/tokens")
async def list_tokens(request: Request, me: Caller) -> PageDoc[TokenDoc]:
    """The caller's personal tokens (every token, for an instance admin)."""
    return PageDoc(items=[TokenDoc.of(t) for t in await personal_tokens(_store(request), me)])


@router.post("/tokens", status_code=201)
async def create_token(request: Request, me: Caller, body: TokenIn) -> MadeTokenDoc:
    """A personal token of the caller's, acting with the caller's roles."""
    by = audit.actor(request, me)
    return MadeTokenDoc.made(*await make_personal(_store(request), me, by, body.name))


@router.delete("/tokens/{token_id}", status_code=204)
async def delete_token(request: Request, me: Caller, token_id: PathId) -> Response:
    await revoke_personal(_store(request), me, audit.actor(request, me), token_id)
    return Response(status_code=204)


@router.get("/projects/{project_id}/service_tokens")
async def list_service_tokens(
    request: Request, me: Caller, project_id: PathId
) -> PageDoc[TokenDoc]:
    store = _store(request)
    await require_project(store, me, Permission.MANAGE, project_id)
    await store.get_project(project_id)
    tokens = await store.list_api_tokens(project_id=project_id)
    return PageDoc(items=[TokenDoc.of(t) for t in tokens])


@router.post("/projects/{project_id}/service_tokens", status_code=201)
async def create_service_token(
    request: Request, me: Caller, project_id: PathId, body: ServiceTokenIn
) -> MadeTokenDoc:
    """A token acting in this project only, with ``role`` (at most the caller's)."""
    by = audit.actor(request, me)
    made = await make_service(_store(request), me, by, project_id, body.name, Role(body.role))
    return MadeTokenDoc.made(*made)


@router.delete("/projects/{project_id}/service_tokens/{token_id}", status_code=204)
async def delete_service_token(
    request: Request, me: Caller, project_id: PathId, token_id: PathId
) -> Response:
    await revoke_service(_store(request), me, audit.actor(request, me), project_id, token_id)
    return Response(status_code=204)


async def personal_tokens(store: Store, me: Principal) -> list[ApiToken]:
    if me.instance_admin:
        return await store.list_api_tokens()
    return await store.list_api_tokens(_owner(me))


async def make_personal(store: Store, me: Principal, by: Actor, name: str) -> tuple[str, ApiToken]:
    """A user's token, or (for an operator token's caller: no user) an operator token."""
    if me.kind == "operator":
        return await issue(store, by, name)
    return await issue(store, by, name, user_id=_owner(me))


async def revoke_personal(store: Store, me: Principal, by: Actor, token_id: str) -> None:
    token = await store.get_api_token(token_id)
    if not me.instance_admin and token.user_id != _owner(me):
        raise AccessError(
            f"token {token_id} is not yours: you may revoke your own tokens only",
            permission="tokens",
        )
    await revoke(store, by, token_id)


async def make_service(
    store: Store, me: Principal, by: Actor, project_id: str, name: str, role: Role
) -> tuple[str, ApiToken]:
    await require_project(store, me, Permission.MANAGE, project_id)
    require_grant(me, role, project_id)
    await store.get_project(project_id)
    return await issue(store, by, name, project_id=project_id, role=role)


async def revoke_service(
    store: Store, me: Principal, by: Actor, project_id: str, token_id: str
) -> None:
    await require_project(store, me, Permission.MANAGE, project_id)
    token = await store.get_api_token(token_id)
    if token.project_id != project_id or token.role is None:
        raise NotFoundError(f"project {project_id} has no service token {token_id}", field="id")
    require_grant(me, token.role, project_id)
    await revoke(store, by, token_id)


def _owner(me: Principal) -> str:
    """The caller's user id; a service token has none.

    Raises:
        AccessError: ``forbidden`` for a service token.
    """
    if me.kind != "user":
        raise AccessError(
            "a service token has no personal tokens: a user makes, lists and revokes their own",
            permission="tokens",
        )
    return me.id
