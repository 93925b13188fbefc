"""Single sign-on with an OpenID Connect provider (issue 18): ``/ui/login/sso`` sends the
browser to the provider, ``/ui/login/sso/callback`` brings it back signed in.

The sign-in page shows "Sign in with <FULMEN_OIDC_NAME>" when a provider is configured
(:func:`button`). The flow is the authorization code flow with PKCE (coordinator/oidc.py):

1. ``/ui/login/sso`` makes a state, a nonce and a PKCE verifier; the store keeps the state's
   digest with the nonce, the verifier and where to go afterwards, for :data:`LIFETIME`; the
   browser keeps the state in an ``HttpOnly`` cookie scoped to these two paths
   (``SameSite=Lax``: the provider's redirect back is a top-level navigation from another
   site, which a ``Strict`` cookie would not come with). Then to the provider.
2. The callback takes the kept request (once: a replayed callback finds nothing) only if the
   state in the URL is the one in this browser's cookie (a sign-in this browser did not start
   is refused: login CSRF), exchanges the code with the verifier, and checks the ID token.
3. The user is the one whose e-mail the provider vouches for (``email_verified``): an address
   the provider has not verified is refused, and so is one no Fulmen user has ("ask an admin
   for an invitation": there is no automatic sign-up) or a disabled user's.
4. A new session, marked as begun through single sign-on: it skips the local second factor
   (the provider is responsible for it, so ``require_mfa`` does not ask for one either).
   The answer is a page that moves on to ``next`` by itself rather than a redirect: the
   session cookie is ``SameSite=Strict``, and a redirect chain begun on the provider's site
   would leave it behind on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import timedelta
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fulmen.coordinator import audit, principals
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.render import page
from fulmen.coordinator.dashboard.session import PREFIX, safe_next, start
from fulmen.coordinator.oidc_client import OidcClient
from fulmen.errors import SignInError
from fulmen.store import SsoRequest

__all__ = ["CALLBACK", "COOKIE", "LIFETIME", "button", "client", "redirect_uri", "router"]

log = logging.getLogger(__name__)

router = APIRouter(route_class=Guarded)

COOKIE: Final = "fulmen_sso"
START: Final = f"{PREFIX}/login/sso"
CALLBACK: Final = f"{START}/callback"
#: How long a sign-in may take at the provider.
LIFETIME: Final = timedelta(minutes=10)

#: Each refusal's status and title on the page that says so.
_ANSWERS: Final = {
    "sso_state": (400, "This sign-in has expired"),
    "sso_refused": (401, "The sign-in provider refused"),
    "sso_token": (401, "Single sign-on did not work"),
    "sso_provider": (502, "The sign-in provider cannot be used now"),
    "email_unverified": (403, "Your e-mail address is not verified"),
    "no_account": (403, "No Fulmen account for this address"),
    "disabled": (403, "Your account is disabled"),
    "sso_off": (404, "Single sign-on is not set up"),
}


def client(request: Request) -> OidcClient | None:
    """The configured provider's client (made by dashboard.install), ``None`` without one."""
    configured: OidcClient | None = request.app.state.sso
    return configured


def button(request: Request) -> str | None:
    """How the sign-in page names the provider on its button; ``None``: no button."""
    configured = client(request)
    return configured.name if configured else None


def redirect_uri(request: Request) -> str:
    """Where the provider sends the browser back: the URL to register with the provider."""
    return str(request.base_url).rstrip("/") + CALLBACK


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _problem(error: SignInError, provider: str = "") -> HTMLResponse:
    status, title = _ANSWERS.get(error.code, (401, "Single sign-on did not work"))
    return page("sso_problem.html", status, heading=title, error=error, provider=provider)


@router.get("/login/sso")
async def begin(request: Request, next: str | None = None) -> Response:
    configured = client(request)
    if configured is None:
        return _problem(
            SignInError(
                "this Fulmen has no single sign-on provider: an operator sets one with "
                "FULMEN_OIDC_ISSUER, FULMEN_OIDC_CLIENT_ID and FULMEN_OIDC_CLIENT_SECRET",
                code="sso_off",
            )
        )
    c: Coordinator = request.app.state.coordinator
    back = redirect_uri(request)
    try:
        url, begun = await configured.start(back)
    except SignInError as error:
        return _problem(error, configured.name)
    expires = c.clock.now() + LIFETIME
    kept = SsoRequest(begun.nonce, begun.verifier, back, safe_next(next), expires)
    await c.store.put_sso_request(_digest(begun.state), kept)
    response = RedirectResponse(url, 303)
    response.set_cookie(
        COOKIE,
        begun.state,
        max_age=int(LIFETIME.total_seconds()),
        path=START,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login/sso/callback")
async def callback(request: Request) -> Response:
    configured = client(request)
    if configured is None:
        return await begin(request)  # says that there is none
    try:
        response = await _signed_in(request, configured)
    except SignInError as error:
        log.warning("single sign-on refused (%s): %s", error.code, error.message)
        await audit.sign_in(request, "", "failed", reason=error.code, method="oidc")
        response = _problem(error, configured.name)
    response.delete_cookie(
        COOKIE,
        path=START,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


async def _signed_in(request: Request, configured: OidcClient) -> Response:
    """The page that moves on signed in, once every check holds.

    Raises:
        SignInError: why not (see _ANSWERS).
    """
    c: Coordinator = request.app.state.coordinator
    query = request.query_params
    state, kept_state = query.get("state", ""), request.cookies.get(COOKIE, "")
    pending = None
    if state and kept_state and hmac.compare_digest(state.encode(), kept_state.encode()):
        pending = await c.store.take_sso_request(_digest(state))
    if "error" in query:
        # The provider's own words only when the state is this sign-in's: anyone can make a
        # link to this page with any text in it.
        error = re.sub(r"[^A-Za-z0-9_.-]", "", query["error"])[:40]
        description = query.get("error_description", "")[:300] if pending else ""
        raise SignInError(
            f"{configured.name} did not sign you in ({error}"
            f"{': ' if description else ''}{description})",
            code="sso_refused",
        )
    if pending is None:
        raise SignInError(
            "this sign-in was not started in this browser, or took longer than "
            f"{int(LIFETIME.total_seconds() // 60)} minutes: start it again",
            code="sso_state",
        )
    if not query.get("code"):
        raise SignInError(f"{configured.name} sent no code back", code="sso_refused")
    identity = await configured.finish(
        query["code"],
        redirect_uri=pending.redirect_uri,
        verifier=pending.verifier,
        nonce=pending.nonce,
        now=c.clock.now(),
    )
    if not identity.email or not identity.email_verified:
        address = identity.email or "(none given)"
        raise SignInError(
            f"{configured.name} has not verified your e-mail address {address}, and Fulmen "
            f"finds people only by an address their provider has verified: verify it with "
            f"{configured.name}, or sign in with your password",
            code="email_unverified",
        )
    user = await c.store.find_user(identity.email)
    if user is None:
        raise SignInError(
            f"there is no Fulmen account for {identity.email}: ask an admin of this Fulmen "
            "for an invitation",
            code="no_account",
        )
    if not user.active:
        raise SignInError("your Fulmen account is disabled", code="disabled")
    response = page("sso_continue.html", next=pending.next)
    digest = await start(response, request, user_id=user.id, stage="full")
    await c.store.mark_sso_session(digest)
    log.info("user %s signed in through single sign-on (%s)", user.id, configured.name)
    principal = await principals.of_user(c.store, user)
    await audit.sign_in(request, user.email, "succeeded", principal=principal, method="oidc")
    return response
