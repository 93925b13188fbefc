"""OAuth2 credentials on the dashboard (issue 19): a form to create one, and "Connect", which
gets its token: from the provider's token endpoint at once for the client-credentials grant,
through the person's consent at the provider for the authorization-code grant.

The authorization-code flow is single sign-on's (sso.py), with the same defences:

1. ``POST /ui/credentials/<project>/<credential>/oauth2/connect`` (a form: same-origin, an
   admin of the project) makes a state and a PKCE verifier (oidc.begin); the store keeps the
   state's SHA-256 with the verifier, the redirect URI, the credential and the SHA-256 of the
   dashboard session that asked, for :data:`LIFETIME`; the browser keeps the state in an
   ``HttpOnly``, ``SameSite=Lax`` cookie scoped to the callback. Then to the provider, by a
   page that moves on by itself: the Content-Security-Policy's ``form-action 'self'`` would
   refuse a form's redirect to another site.
2. ``GET /ui/oauth2/callback`` is where the provider sends the browser back: a navigation
   begun on the provider's site, which the ``SameSite=Strict`` session cookie does not come
   with, so this page only moves on by itself, from this site, to
3. ``GET /ui/oauth2/finish``, which the session cookie comes with: it takes the kept
   authorization (once: a replayed callback finds nothing) only if the state in the URL is the
   one in this browser's cookie (an authorization this browser did not begin is refused) and
   the session is the one that began it; asks the role again; then exchanges the code with the
   verifier (a code caught on its way is useless without it) and keeps the tokens. The state
   cookie is cleared only by a finish with its state: a link to someone else's callback
   leaves this browser's own authorization to finish.

Every outcome goes back to the credentials page, which says it; the provider's own error
words are shown only when the state is this browser's (anyone can link to the callback with
any text in it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import timedelta
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from fulmen.coordinator import audit, oauth2, oidc
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.oauth2 import connect, connected, put_oauth2_credential
from fulmen.coordinator.api.schemas.oauth2 import OAuth2CredentialIn
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.credentials import FIELDS, credentials_page, done
from fulmen.coordinator.dashboard.forms import (
    Guarded,
    cross_site,
    json_object,
    problem_of,
    refusal,
)
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, Signed, cookie_digest
from fulmen.coordinator.guard import require_project
from fulmen.coordinator.oauth2_client import token_request
from fulmen.errors import CredentialError, FulmenError, InputError, NotFoundError
from fulmen.store import Grant, OAuth2Authorization

__all__ = ["CALLBACK", "COOKIE", "LIFETIME", "redirect_uri", "router"]

log = logging.getLogger(__name__)

router = APIRouter(route_class=Guarded)

COOKIE: Final = "fulmen_oauth2"
CALLBACK: Final = f"{PREFIX}/oauth2/callback"
FINISH: Final = f"{PREFIX}/oauth2/finish"
#: How long a person may take to consent at the provider.
LIFETIME: Final = timedelta(minutes=10)


def redirect_uri(request: Request) -> str:
    """Where the provider sends the browser back: the URL to register with the provider."""
    return str(request.base_url).rstrip("/") + CALLBACK


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@router.post("/credentials/{project_id}/oauth2", response_class=HTMLResponse)
async def create(
    request: Request,
    project_id: str,
    me: Signed,
    name: Annotated[str, Form()] = "",
    grant: Annotated[str, Form()] = "",
    authorization_url: Annotated[str, Form()] = "",
    token_url: Annotated[str, Form()] = "",
    client_id: Annotated[str, Form()] = "",
    client_secret: Annotated[str, Form()] = "",
    scopes: Annotated[str, Form()] = "",
    body: Annotated[str, Form()] = "",
) -> Response:
    """A new OAuth2 credential; a client-credentials one is connected at once."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    form = f"oauth2:{project_id}"
    try:
        given = OAuth2CredentialIn.model_validate(
            {
                "name": name.strip(),
                "grant": grant,
                "authorization_url": authorization_url.strip(),
                "token_url": token_url.strip(),
                "client_id": client_id,
                "client_secret": client_secret,
                "scopes": scopes.split(),
                "body": json_object(body, "body") if body.strip() else {},
            }
        )
        made = await put_oauth2_credential(c, audit.actor(request, me), project_id, given.id, given)
    except (ValidationError, FulmenError) as error:
        return await credentials_page(request, me, problem_of(form, error, FIELDS))
    if made.grant == Grant.CLIENT_CREDENTIALS.value:
        return done("connected" if made.status == "connected" else "not_connected", made.id)
    return done("oauth2_created", made.id)


@router.post(
    "/credentials/{project_id}/{credential_id}/oauth2/connect", response_class=HTMLResponse
)
async def begin(request: Request, project_id: str, credential_id: str, me: Signed) -> Response:
    """Client credentials: a token now. Authorization code: to the provider (see above)."""
    if cross_site(request):
        return refusal()
    c: Coordinator = request.app.state.coordinator
    await require_project(c.store, me, Permission.MANAGE, project_id)
    form = f"connect:{credential_id}"
    try:
        if await c.store.project_of("credential", credential_id) != project_id:
            raise NotFoundError(f"credential {credential_id} is not in this project", field="id")
        state = await c.store.get_oauth2_state(credential_id)
        if state.settings.grant is Grant.CLIENT_CREDENTIALS:
            made = await connect(c, audit.actor(request, me), credential_id)
            return done("connected" if made.status == "connected" else "not_connected", made.id)
    except FulmenError as error:
        return await credentials_page(request, me, problem_of(form, error, FIELDS))
    begun = oidc.begin()
    back = redirect_uri(request)
    kept = OAuth2Authorization(
        credential_id, cookie_digest(request), begun.verifier, back, c.clock.now() + LIFETIME
    )
    await c.store.put_oauth2_authorization(_digest(begun.state), kept)
    response = page(
        "oauth2_continue.html",
        heading="To the provider",
        next=oauth2.authorization_url(state.settings, back, begun.state, begun.verifier),
    )
    response.set_cookie(
        COOKIE,
        begun.state,
        max_age=int(LIFETIME.total_seconds()),
        path=f"{PREFIX}/oauth2",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/oauth2/callback", response_class=HTMLResponse)
async def callback(request: Request) -> Response:
    """Back from the provider: on to :func:`finish`, from this site (see above)."""
    query = {k: v for k, v in request.query_params.items() if k in _CARRIED}
    return page(
        "oauth2_continue.html",
        heading="Back from the provider",
        next=f"{FINISH}?{urlencode(query)}",
    )


_CARRIED: Final = ("code", "state", "error", "error_description")


@router.get("/oauth2/finish", response_class=HTMLResponse)
async def finish(request: Request, me: Signed) -> Response:
    c: Coordinator = request.app.state.coordinator
    query = request.query_params
    state, kept_state = query.get("state", ""), request.cookies.get(COOKIE, "")
    pending = None
    response: Response
    ours = bool(state and kept_state) and hmac.compare_digest(state.encode(), kept_state.encode())
    if ours:
        pending = await c.store.take_oauth2_authorization(_digest(state))
    if pending is not None and not hmac.compare_digest(
        pending.session_digest.encode(), cookie_digest(request).encode()
    ):
        pending = None  # begun by another session (of this browser): not this one's to finish
    try:
        if pending is None:
            raise InputError(
                "this authorization was not begun in this session, was already used, or took "
                f"longer than {int(LIFETIME.total_seconds() // 60)} minutes: press Connect again",
                code="oauth2_state",
            )
        project_id = await c.store.project_of("credential", pending.credential_id)
        await require_project(c.store, me, Permission.MANAGE, project_id)
        by = audit.actor(request, me)
        if "error" in query:
            error = re.sub(r"[^A-Za-z0-9_.-]", "", query["error"])[:40]
            description = query.get("error_description", "")[:200]
            raise CredentialError(
                f"the provider did not authorise ({error}{': ' if description else ''}"
                f"{description})",
                code="reauthorization_required",
            )
        if not query.get("code"):
            raise CredentialError("the provider sent no code back", code="provider_unavailable")
        current = await c.store.get_oauth2_credential(pending.credential_id)
        settings = current.state.settings
        answer = await token_request(
            settings.token_url,
            oauth2.code_form(
                settings,
                current.secrets.client_secret,
                query["code"],
                pending.redirect_uri,
                pending.verifier,
            ),
            c.outbound,
        )
        made = await connected(c, by, pending.credential_id, answer)
    except FulmenError as error:
        log.warning("an OAuth2 authorization was refused (%s): %s", error.code, error.message)
        form = f"connect:{pending.credential_id}" if pending else "oauth2"
        response = await credentials_page(request, me, problem_of(form, error, FIELDS))
    else:
        what = "connected" if made.status == "connected" else "not_connected"
        response = done(what, made.id)
    if not ours:
        # Someone else's callback (a link to it with their code and state): this browser's
        # own authorization, still pending at the provider, is left to finish.
        return response
    response.delete_cookie(
        COOKIE,
        path=f"{PREFIX}/oauth2",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response
