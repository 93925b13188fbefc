"""Who may see the dashboard: whoever holds a REST API token, for a while.

Signing in posts a token (``fulmen up`` writes one to ``.fulmen/api-token``; ``fulmen server
token create`` makes more); it is checked as the API checks it, and starts a server-side
session: 32 random bytes, the cookie's value, of which the store keeps only the SHA-256 with
the token's id. The token itself never goes into the cookie. The cookie is ``HttpOnly`` (no
script reads it), ``SameSite=Strict`` (no other site's page sends it), scoped to ``/ui``, and
``Secure`` over HTTPS.

Every request resumes the session, which is refused once unused for the idle limit
(``FULMEN_DASHBOARD_SESSION_IDLE_SECONDS``, 12 hours) or older than the absolute limit
(``FULMEN_DASHBOARD_SESSION_MAX_SECONDS``, 7 days), and when its token has been deleted:
revoking a token signs its sessions out. Signing out deletes the session. State-changing
requests are POSTs, refused when their ``Origin`` names another host. The coordinator
listens on 127.0.0.1 unless told otherwise; these checks are what keep the pages private
when it is told otherwise.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Final
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from fulmen.coordinator.core import Coordinator
from fulmen.store import ApiToken, SessionLimits

__all__ = [
    "COOKIE",
    "PREFIX",
    "SignInRequired",
    "limits",
    "safe_next",
    "same_origin",
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


class SignInRequired(Exception):
    """Raised by :func:`viewer`; answered with the sign-in page or 401."""


def limits(c: Coordinator) -> SessionLimits:
    """How long a session lives, from the coordinator's settings."""
    return SessionLimits(
        idle=timedelta(seconds=c.settings.dashboard_session_idle),
        absolute=timedelta(seconds=c.settings.dashboard_session_max),
    )


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def signed_in(request: Request) -> ApiToken | None:
    """The token of the request's live session, else ``None``."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    c: Coordinator = request.app.state.coordinator
    return await c.store.resume_dashboard_session(_digest(session_id), limits(c))


async def viewer(request: Request) -> ApiToken:
    """The dependency of every page but the sign-in page."""
    stored = await signed_in(request)
    if stored is None:
        raise SignInRequired
    return stored


async def sign_in_required(request: Request, error: Exception) -> Response:
    if request.headers.get(FETCH_HEADER) or request.method != "GET":
        return JSONResponse({"error": {"code": "unauthorized", "message": "sign in"}}, 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", 303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX


async def start(response: Response, request: Request, token: ApiToken) -> None:
    """Sign ``token`` in: a new session, its id in the response's cookie. A session the
    browser already had ends."""
    c: Coordinator = request.app.state.coordinator
    if previous := request.cookies.get(COOKIE):
        await c.store.end_dashboard_session(_digest(previous))
    session_id = secrets.token_urlsafe(ID_BYTES)
    session = limits(c)
    await c.store.open_dashboard_session(_digest(session_id), token.id, session)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(session.absolute.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def sign_out(response: Response, request: Request) -> None:
    """End the request's session, and tell the browser to drop the cookie."""
    if session_id := request.cookies.get(COOKIE):
        c: Coordinator = request.app.state.coordinator
        await c.store.end_dashboard_session(_digest(session_id))
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
