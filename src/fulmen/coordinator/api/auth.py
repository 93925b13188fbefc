"""Bearer API tokens: ``fmn_<id>_<secret>``, made by ``fulmen server token create`` or on the
dashboard's token page (both through :func:`issue`, and revoked through :func:`revoke`, each
with its record in the audit trail: the token's name and owner, never the token).

The store keeps the id, a name and the SHA-256 of the secret; the token is shown once. A
request's token is found by its id and compared by digest in constant time. A missing,
malformed, unknown or wrong token is 401 with ``WWW-Authenticate: Bearer``; which of these it
was is logged, the token never.

The check is made by :class:`TokenFirst`, before anything reads the request's body: FastAPI
reads and parses a route's body before it runs the route's dependencies, so as a dependency
alone it would let anyone make the server take in a body up to the API's limit (a manual
run's input: the dataclip limit, 10 MB) before hearing 401. The :func:`authorized`
dependency, which every ``/api`` route has, hands the route the
:class:`~fulmen.coordinator.access.Principal` the token acts as (principals.py: a user's
personal token, a project's service token, an operator token) and says so in the OpenAPI
document. A token whose user is disabled is refused like a deleted one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from fulmen.coordinator import audit, principals
from fulmen.coordinator.access import Principal
from fulmen.coordinator.core import Coordinator
from fulmen.errors import InputError, NotFoundError
from fulmen.store import Actor, ApiToken, Role, Store

__all__ = [
    "PREFIX",
    "TOUCH_EVERY",
    "Caller",
    "TokenFirst",
    "authorized",
    "issue",
    "mint",
    "parse",
    "revoke",
    "verify",
]

log = logging.getLogger(__name__)

PREFIX: Final = "fmn"
#: How stale a token's ``last_used_at`` may get before a request writes it again: a write per
#: request would make every API call a database write; the token list needs minutes, not ms.
TOUCH_EVERY: Final = timedelta(minutes=1)
_bearer = HTTPBearer(
    auto_error=False, description="An API token from `fulmen server token create`."
)


def mint(
    name: str,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    role: Role | None = None,
) -> tuple[str, ApiToken]:
    """A new token and the row that stores it (without the secret)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiToken(
        token_id, name, _digest(secret), user_id=user_id, project_id=project_id, role=role
    )
    return f"{PREFIX}_{token_id}_{secret}", row


async def issue(
    store: Store,
    by: Actor,
    name: str,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    role: Role | None = None,
) -> tuple[str, ApiToken]:
    """Make a token named ``name`` and store it: the token (to show once) and its row. A
    token is a user's (``user_id``), a project's with a role (``project_id`` and ``role``:
    a service token), or, with neither, an operator's (models/api_tokens.py). Recorded as
    ``token.created`` for ``by``.

    Raises:
        InputError: ``bad_token_name`` for an empty name; ``bad_token_owner`` for a token
            named both a user's and a project's, or a project's without a role.
    """
    name = name.strip()
    if not name:
        raise InputError(
            "a token needs a name: who or what it is for", code="bad_token_name", field="name"
        )
    if (project_id is None) != (role is None) or (user_id and project_id):
        raise InputError(
            "a token is a user's, or one project's with a role",
            code="bad_token_owner",
            field="role",
        )
    secret, row = mint(name, user_id=user_id, project_id=project_id, role=role)
    async with store.together():
        stored = await store.put_api_token(row)
        await audit.token(store, by, "created", stored)
    return secret, stored


async def revoke(store: Store, by: Actor, token_id: str) -> ApiToken:
    """Delete a token (NotFoundError: none has that id): the API refuses it from now on,
    and the dashboard sessions signed in with it end. Recorded as ``token.revoked``."""
    current = await store.get_api_token(token_id)
    async with store.together():
        await store.delete_api_token(token_id)
        await audit.token(store, by, "revoked", current)
    return current


def parse(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else ``None``."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not token_id or not secret:
        return None
    return token_id, secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


async def authorized(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The dependency every ``/api`` route has: who the caller's token acts as, or 401."""
    checked = principals.kept(request.scope)
    if checked is not None:
        return checked
    return await _check(request)


#: A route's parameter: who the caller's token acts as (what access.require is asked about).
Caller = Annotated[Principal, Depends(authorized)]


class TokenFirst:
    """ASGI middleware: a request under ``/api`` is answered 401 before its body is read,
    unless it carries a valid API token (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            try:
                scope[principals.SCOPE_KEY] = await _check(Request(scope))
            except HTTPException as refused:
                answer = JSONResponse({"detail": refused.detail}, 401, headers=refused.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _check(request: Request) -> Principal:
    """Who the valid token of ``request``'s ``Authorization: Bearer`` header acts as, else
    401."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("an API token is required: Authorization: Bearer <token>")
    c: Coordinator = request.app.state.coordinator
    stored = await verify(c.store, token)
    principal = None if stored is None else await principals.of_token(c.store, stored)
    if principal is None:
        raise _unauthorized("the API token is not valid")
    return principal


async def verify(store: Store, token: str, *, what: str = "API request") -> ApiToken | None:
    """The stored token that ``token`` is, else ``None`` (and a warning saying why, without
    the token). The dashboard's sign-in checks the token it is given with this; its cookie
    holds a session id, checked against the store's sessions (``dashboard/session.py``)."""
    parts = parse(token)
    if parts is None:
        log.warning("%s with a malformed token", what)
        return None
    try:
        stored = await store.get_api_token(parts[0])
    except NotFoundError:
        log.warning("%s with an unknown token id", what)
        return None
    if not hmac.compare_digest(stored.digest, _digest(parts[1])):
        log.warning("%s with a wrong secret for token %s", what, stored.id)
        return None
    last = stored.last_used_at
    if last is None or datetime.now(UTC) - last >= TOUCH_EVERY:
        await store.touch_api_token(stored.id)
    return stored
