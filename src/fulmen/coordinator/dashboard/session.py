"""Who may see the dashboard: a signed-in user, or, before any user exists, whoever holds a
REST API token; for a while.

Signing in (pages.py) starts a server-side session: 32 random bytes, the cookie's value, of
which the store keeps only the SHA-256 with whose session it is (a user's, or the token's
that signed in) and its stage (``mfa``: waiting for the second factor, which opens nothing
else). Nothing secret goes into the cookie. The cookie is ``HttpOnly`` (no
script reads it), ``SameSite=Strict`` (no other site's page sends it), scoped to ``/ui``, and
``Secure`` over HTTPS.

Every request resumes the session, which is refused once unused for the idle limit
(``FULMEN_DASHBOARD_SESSION_IDLE_SECONDS``, 12 hours) or older than the absolute limit
(``FULMEN_DASHBOARD_SESSION_MAX_SECONDS``, 7 days), and when its user is disabled or its
token deleted (revoking a token signs its sessions out); a password change ends the user's
other sessions. Signing out deletes the session. When an instance admin requires a second
factor (``require_mfa``), a user signed in with a password who has none sees only the page
that enrols one (``/ui/account/mfa``) until they have; API tokens are not affected. State-changing
requests are POSTs, refused when their ``Origin`` names another host. The coordinator
listens on 127.0.0.1 unless told otherwise; these checks are what keep the pages private
when it is told otherwise.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Annotated, Final
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from fulmen.coordinator import audit, principals, second_factor
from fulmen.coordinator.access import Principal
from fulmen.coordinator.core import Coordinator
from fulmen.store import DashboardSession, SessionLimits
from fulmen.store.dashboard_sessions import SessionStage

__all__ = [
    "COOKIE",
    "ENROL",
    "PREFIX",
    "EnrolmentRequired",
    "SignInRequired",
    "Signed",
    "cookie_digest",
    "enrolment_required",
    "key_of",
    "limits",
    "safe_next",
    "same_origin",
    "session_of",
    "sign_in_required",
    "sign_out",
    "signed_in",
    "start",
    "viewer",
]

PREFIX: Final = "/ui"
COOKIE: Final = "fulmen_session"
#: Random bytes in a session id (the cookie's value, URL-safe base64).
ID_BYTES: Final = 32
#: Sent by the dashboard's own script: such a request wants 401, not the sign-in page.
FETCH_HEADER: Final = "x-fulmen-fetch"
#: Where a user enrols a second factor (dashboard/second_factor.py).
ENROL: Final = f"{PREFIX}/account/mfa"


class SignInRequired(Exception):
    """Raised by :func:`viewer`; answered with the sign-in page or 401."""


class EnrolmentRequired(Exception):
    """Raised by :func:`viewer` when the instance requires a second factor and the user has
    none (second_factor.enrolment_due); answered with the enrolment page or 403."""


def limits(c: Coordinator) -> SessionLimits:
    """How long a session lives, from the coordinator's settings."""
    return SessionLimits(
        idle=timedelta(seconds=c.settings.dashboard_session_idle),
        absolute=timedelta(seconds=c.settings.dashboard_session_max),
    )


def key_of(session_id: str) -> str:
    """The store's key of a session: the SHA-256 of its id (the cookie's value)."""
    return hashlib.sha256(session_id.encode()).hexdigest()


async def session_of(request: Request) -> DashboardSession | None:
    """The request's live session, whatever its stage, else ``None``."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    c: Coordinator = request.app.state.coordinator
    return await c.store.resume_dashboard_session(key_of(session_id), limits(c))


async def signed_in(request: Request) -> Principal | None:
    """Who the request's live, fully signed-in session acts as, else ``None``."""
    return await _acting(request, await session_of(request))


async def _acting(request: Request, session: DashboardSession | None) -> Principal | None:
    if session is None or session.stage != "full":
        return None
    c: Coordinator = request.app.state.coordinator
    return await principals.of_session(c.store, session)


async def viewer(request: Request) -> Principal:
    """The dependency of every page but the sign-in pages (and the enrolment page: a user the
    instance requires a second factor of sees nothing else until they have one). The principal
    is kept in the request's scope (principals.kept) for the audit trail's record of a
    refusal."""
    session = await session_of(request)
    principal = await _acting(request, session)
    if principal is None or session is None:
        raise SignInRequired
    request.scope[principals.SCOPE_KEY] = principal
    c: Coordinator = request.app.state.coordinator
    if await second_factor.enrolment_due(c.store, session, cookie_digest(request)):
        raise EnrolmentRequired
    return principal


async def sign_in_required(request: Request, error: Exception) -> Response:
    if request.headers.get(FETCH_HEADER) or request.method != "GET":
        return JSONResponse({"error": {"code": "unauthorized", "message": "sign in"}}, 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", 303)


async def enrolment_required(request: Request, error: Exception) -> Response:
    if request.headers.get(FETCH_HEADER) or request.method != "GET":
        message = "this instance requires two-factor sign-in: set it up first"
        return JSONResponse({"error": {"code": "mfa_required", "message": message}}, 403)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{ENROL}?next={quote(target)}", 303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX


async def start(
    response: Response,
    request: Request,
    *,
    user_id: str | None = None,
    token_id: str | None = None,
    stage: SessionStage = "full",
) -> str:
    """Sign a user (or, before users exist, a token) in: a new session, its id in the
    response's cookie; the store's key of it (its digest). A session the browser already had
    ends: a new id at each sign-in and at each stage, so an id seen before signing in is
    worth nothing after."""
    c: Coordinator = request.app.state.coordinator
    if previous := request.cookies.get(COOKIE):
        await c.store.end_dashboard_session(key_of(previous))
    session_id = secrets.token_urlsafe(ID_BYTES)
    session = limits(c)
    address = audit.address_of(request)
    await c.store.open_dashboard_session(
        key_of(session_id),
        session,
        user_id=user_id,
        token_id=token_id,
        stage=stage,
        address=address,
    )
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(session.absolute.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return key_of(session_id)


def cookie_digest(request: Request) -> str:
    """The store's key of the request's session ("" without one): what a password change
    keeps signed in."""
    session_id = request.cookies.get(COOKIE)
    return key_of(session_id) if session_id else ""


async def sign_out(response: Response, request: Request) -> None:
    """End the request's session, and tell the browser to drop the cookie."""
    if session_id := request.cookies.get(COOKIE):
        c: Coordinator = request.app.state.coordinator
        await c.store.end_dashboard_session(key_of(session_id))
    response.delete_cookie(
        COOKIE,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this host (browsers send ``Origin``; a client
    without one is not a browser tricked by another site)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


#: A page's dependency: who is signed in (the sign-in page otherwise).
Signed = Annotated[Principal, Depends(viewer)]
