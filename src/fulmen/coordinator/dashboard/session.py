"""Who may see the dashboard: whoever holds a REST API token.

Signing in posts a token (``fulmen up`` writes one to ``.fulmen/api-token``; ``fulmen server
token create`` makes more); it is checked as the API checks it, and kept in a cookie that is
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it) and
scoped to ``/ui``, ``Secure`` over HTTPS. Every request checks it again, so revoking the token
signs its sessions out. State-changing requests are POSTs, refused when their ``Origin`` names
another host. The coordinator listens on 127.0.0.1 unless told otherwise; these checks are
what keep the pages private when it is told otherwise.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from fulmen.coordinator.api.auth import verify
from fulmen.coordinator.core import Coordinator
from fulmen.store import ApiToken

__all__ = [
    "COOKIE",
    "PREFIX",
    "SignInRequired",
    "forget",
    "remember",
    "safe_next",
    "same_origin",
    "sign_in_required",
    "signed_in",
    "viewer",
]

PREFIX: Final = "/ui"
COOKIE: Final = "fulmen_session"
#: Sent by the dashboard's own script: such a request wants 401, not the sign-in page.
FETCH_HEADER: Final = "x-fulmen-fetch"


class SignInRequired(Exception):
    """Raised by :func:`viewer`; answered with the sign-in page or 401."""


async def signed_in(request: Request) -> ApiToken | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    c: Coordinator = request.app.state.coordinator
    return await verify(c.store, token, what="dashboard request")


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


def remember(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this host (browsers send ``Origin``; a client
    without one is not a browser tricked by another site)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")
