"""OAuth2 credentials over the REST API (issue 19): create or replace one, see its state
(connected, needing re-authorisation, when its token expires: never a token), and connect a
client-credentials one.

:func:`put_oauth2_credential`, :func:`connect` and :func:`connected` are how these are
changed, here and on the dashboard (dashboard/oauth2.py), each recorded in the audit trail
with the change (``credential.created|updated`` as any credential, then
``credential.oauth2_connected``, or ``credential.oauth2_refresh_failed`` when the provider
gave no token). Saving settings drops the tokens (they were the old client's): a
client-credentials credential is connected again at once, an authorization-code one waits for
a person to press "Connect" on the dashboard, where the provider asks for their consent.
Who may: admins, as for every credential (access.py: credentials are managed); anyone who may
read the project sees the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request

from fulmen.coordinator import audit, oauth2
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.common import PathId
from fulmen.coordinator.api.schemas.oauth2 import OAuth2CredentialDoc, OAuth2CredentialIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.guard import require_on, require_project
from fulmen.coordinator.oauth2_client import token_request
from fulmen.errors import ConflictError, CredentialError
from fulmen.store import (
    Actor,
    Grant,
    NewCredential,
    OAuth2Secrets,
    OAuth2Status,
    Store,
)

__all__ = ["connect", "connected", "put_oauth2_credential", "router"]

router = APIRouter()


def _coordinator(request: Request) -> Coordinator:
    c: Coordinator = request.app.state.coordinator
    return c


@router.post("/projects/{project_id}/credentials/oauth2", tags=["credentials"], status_code=201)
async def create_oauth2_credential(
    request: Request, me: Caller, project_id: PathId, credential: OAuth2CredentialIn
) -> OAuth2CredentialDoc:
    """A client-credentials credential is connected at once (its ``problem`` says why not);
    an authorization-code one is connected from the dashboard."""
    c = _coordinator(request)
    await require_project(c.store, me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return await put_oauth2_credential(c, by, project_id, credential.id, credential)


@router.put("/projects/{project_id}/credentials/{credential_id}/oauth2", tags=["credentials"])
async def replace_oauth2_credential(
    request: Request,
    me: Caller,
    project_id: PathId,
    credential_id: PathId,
    credential: OAuth2CredentialIn,
) -> OAuth2CredentialDoc:
    """New settings, secret and body: the tokens are dropped and the credential connected
    again as when created."""
    c = _coordinator(request)
    await require_project(c.store, me, Permission.MANAGE, project_id)
    by = audit.actor(request, me)
    return await put_oauth2_credential(c, by, project_id, credential_id, credential)


@router.get("/credentials/{credential_id}/oauth2", tags=["credentials"])
async def get_oauth2_credential(
    request: Request, me: Caller, credential_id: PathId
) -> OAuth2CredentialDoc:
    """Its settings and state (``connected``, ``not_connected``, ``needs_reauthorization``
    with the provider's ``problem``, when the token expires): never a token."""
    store = _coordinator(request).store
    await require_on(store, me, Permission.READ, "credential", credential_id)
    return OAuth2CredentialDoc.of(
        await store.get_credential(credential_id), await store.get_oauth2_state(credential_id)
    )


@router.post("/credentials/{credential_id}/oauth2/connect", tags=["credentials"])
async def connect_oauth2_credential(
    request: Request, me: Caller, credential_id: PathId
) -> OAuth2CredentialDoc:
    """Get a client-credentials token now (409 for an authorization-code credential: a
    person connects that one on the dashboard)."""
    store = _coordinator(request).store
    await require_on(store, me, Permission.MANAGE, "credential", credential_id)
    state = await store.get_oauth2_state(credential_id)
    if state.settings.grant is not Grant.CLIENT_CREDENTIALS:
        raise ConflictError(
            f"credential {credential_id} uses the authorization-code grant: connect it on the "
            "dashboard's credentials page, where the provider asks for consent",
            field="grant",
        )
    return await connect(_coordinator(request), audit.actor(request, me), credential_id)


async def put_oauth2_credential(
    c: Coordinator, by: Actor, project_id: str, credential_id: str, given: OAuth2CredentialIn
) -> OAuth2CredentialDoc:
    """Create or replace the credential (its settings checked: InputError naming the field),
    not connected; then connect it when the client alone can."""
    settings = oauth2.checked_settings(
        given.grant,
        token_url=given.token_url,
        client_id=given.client_id,
        authorization_url=given.authorization_url,
        scopes=given.scopes,
    )
    c.outbound.policy.check_url(settings.token_url, "token_url")
    store = c.store
    await store.get_project(project_id)
    listed = await store.list_credentials(project_id)
    current = next((info for info in listed if info.id == credential_id), None)
    uses = await audit.credential_uses(store, project_id, credential_id)
    new = NewCredential(credential_id, project_id, given.name, given.body)
    async with store.together():
        saved = await store.put_oauth2_credential(
            new,
            settings,
            OAuth2Secrets(client_secret=given.client_secret),
            status=OAuth2Status.NOT_CONNECTED,
        )
        await store.append_audit(audit.credential_change(by, current, saved, uses))
    if settings.grant is Grant.CLIENT_CREDENTIALS:
        return await connect(c, by, credential_id)
    return OAuth2CredentialDoc.of(
        await store.get_credential(credential_id), await store.get_oauth2_state(credential_id)
    )


async def connect(c: Coordinator, by: Actor, credential_id: str) -> OAuth2CredentialDoc:
    """Get a client-credentials token and keep it; when the provider gives none, the
    credential stays unconnected with the provider's words as its ``problem``."""
    current = await c.store.get_oauth2_credential(credential_id)
    settings = current.state.settings
    try:
        answer = await token_request(
            settings.token_url,
            oauth2.client_credentials_form(settings, current.secrets.client_secret),
            c.outbound,
        )
    except CredentialError as error:
        return await _not_connected(c.store, by, credential_id, error)
    return await connected(c, by, credential_id, answer)


async def connected(
    c: Coordinator, by: Actor, credential_id: str, answer: Mapping[str, Any]
) -> OAuth2CredentialDoc:
    """Keep the tokens a token endpoint gave (``credential.oauth2_connected``)."""
    store = c.store
    current = await store.get_oauth2_credential(credential_id)
    info = await store.get_credential(credential_id)
    now = c.clock.now()
    try:
        fresh, expires_at = oauth2.tokens_of(answer, current.secrets, now)
    except CredentialError as error:
        return await _not_connected(store, by, credential_id, error)
    state = replace(
        current.state,
        status=OAuth2Status.CONNECTED,
        problem="",
        expires_at=expires_at,
        refreshed_at=now,
    )
    async with store.together():
        await store.save_oauth2_tokens(credential_id, fresh, expires_at, now)
        await store.append_audit(audit.oauth2_event(by, "oauth2_connected", info, state))
    return OAuth2CredentialDoc.of(info, state)


async def _not_connected(
    store: Store, by: Actor, credential_id: str, error: CredentialError
) -> OAuth2CredentialDoc:
    info = await store.get_credential(credential_id)
    current = await store.get_oauth2_state(credential_id)
    state = replace(current, status=OAuth2Status.NOT_CONNECTED, problem=error.message)
    detail = {"code": error.code, "message": error.message}
    async with store.together():
        await store.set_oauth2_status(credential_id, state.status, state.problem)
        await store.append_audit(
            audit.oauth2_event(by, "oauth2_refresh_failed", info, state, detail)
        )
    return OAuth2CredentialDoc.of(info, state)
