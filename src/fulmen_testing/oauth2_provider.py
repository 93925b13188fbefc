"""An OAuth2 provider on loopback, for the OAuth2 credential tests (issue 19).

Written here rather than borrowed: ``oidc-provider-mock`` (the single sign-on tests'
provider) issues refresh tokens but has no client-credentials grant, and gives a test no way
to count token requests, hold one until the test lets it go, or revoke a grant. This one is a
small Starlette app served by uvicorn in the test's own event loop:

* ``GET /authorize``: consents at once (or refuses, ``deny``) and sends the browser back to
  the redirect URI with a code bound to the PKCE challenge (S256 only) and redirect URI;
* ``POST /token``: the ``authorization_code`` (the verifier checked, a code used once),
  ``refresh_token`` and ``client_credentials`` grants, the client authenticated by its id
  and secret in the form; each request's form kept in ``requests``. ``revoked`` refuses
  every refresh with ``invalid_grant``; ``down`` answers 503; ``hold``, when set, makes a
  refresh wait until the test sets it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "OAuth2Provider", "oauth2_provider"]

CLIENT_ID: Final = "fulmen-client"
CLIENT_SECRET: Final = "provider-client-secret-0123"


@dataclass
class OAuth2Provider:
    base_url: str = ""
    #: ``expires_in`` of the access tokens it issues.
    lifetime: int = 3600
    deny: bool = False
    revoked: bool = False
    down: bool = False
    #: When set (an unset event), each refresh waits for it.
    hold: asyncio.Event | None = None
    #: Every token request's form, in order.
    requests: list[dict[str, str]] = field(default_factory=list)
    #: Every access token issued, in order.
    issued: list[str] = field(default_factory=list)
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    _refresh_tokens: set[str] = field(default_factory=set)

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def count(self, grant: str) -> int:
        return sum(1 for form in self.requests if form.get("grant_type") == grant)

    def refresh_token(self) -> str:
        """A refresh token it will honour (for a credential seeded as already connected)."""
        token = "rt-" + secrets.token_urlsafe(24)
        self._refresh_tokens.add(token)
        return token

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
            ]
        )

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        back = q.get("redirect_uri", "")
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or not back:
            return JSONResponse({"error": "invalid_request"}, 400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE"}, 400)
        if self.deny:
            answer = {"error": "access_denied", "error_description": "the user said no"}
        else:
            code = secrets.token_urlsafe(16)
            self._codes[code] = (q["code_challenge"], back)
            answer = {"code": code}
        return RedirectResponse(f"{back}?{urlencode({**answer, 'state': q.get('state', '')})}", 303)

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append(form)
        if self.down:
            return JSONResponse({"error": "temporarily_unavailable"}, 503)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            kept = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if kept is None or kept != (challenge, form.get("redirect_uri")):
                return JSONResponse({"error": "invalid_grant"}, 400)
            return self._tokens(refresh=True)
        if grant == "refresh_token":
            if self.hold is not None:
                await self.hold.wait()
            if self.revoked or form.get("refresh_token") not in self._refresh_tokens:
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "refresh token revoked"}, 400
                )
            return self._tokens(refresh=False)
        if grant == "client_credentials":
            return self._tokens(refresh=False)
        return JSONResponse({"error": "unsupported_grant_type"}, 400)

    def _tokens(self, *, refresh: bool) -> JSONResponse:
        access = "at-" + secrets.token_urlsafe(24)
        self.issued.append(access)
        body: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": "read",
        }
        if refresh:
            body["refresh_token"] = self.refresh_token()
        return JSONResponse(body)


@asynccontextmanager
async def oauth2_provider(name: str = "127.0.0.1") -> AsyncIterator[OAuth2Provider]:
    """The provider on a free port of 127.0.0.1, until the block ends; ``name`` is the host
    its URLs name (``localhost``: another site than the coordinator's ``127.0.0.1``, as a
    real provider is, for a browser)."""
    provider = OAuth2Provider()
    config = uvicorn.Config(provider.app(), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:  # uvicorn offers no event to await
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    provider.base_url = f"http://{name}:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        yield provider
    finally:
        server.should_exit = True
        await task
