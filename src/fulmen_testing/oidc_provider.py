"""An OpenID Connect provider on loopback, for the single sign-on tests (issue 18).

The provider is ``oidc-provider-mock`` (authlib's authorization server, as a Flask app): a
real discovery document, JWKS, authorization page (a form: the subject to sign in as) and
token endpoint, signing real RS256 ID tokens. It runs in a thread on ``localhost`` (another
site than the coordinator's ``127.0.0.1``, as a real provider is: the browser test crosses
sites as a person's sign-in does).

``tamper`` rewrites the ID token the token endpoint answers with, for the tests of tokens a
provider should never send (signed by another key, ``alg: none``, ...).
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import httpx2
import jwt
import pytest
import werkzeug.serving
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["QUIET", "OidcProvider", "claims_of", "oidc_provider", "resign"]

Tamper = Callable[[str], str]

#: What a test module that serves the provider marks itself with: authlib (under the provider)
#: warns of its own deprecations, and the test suite makes warnings errors.
QUIET: Final = [
    pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]


@dataclass
class OidcProvider:
    issuer: str
    #: Rewrites each ID token the token endpoint gives (``None``: as the provider signed it).
    tamper: Tamper | None = None
    #: The ID tokens the token endpoint gave, as the provider signed them.
    issued: list[str] = field(default_factory=list)

    async def user(self, sub: str, **claims: Any) -> None:
        """Make (or replace) the subject ``sub`` with these claims (``email``,
        ``email_verified``, ``name``...)."""
        async with httpx2.AsyncClient() as http:
            answer = await http.put(f"{self.issuer}/users/{sub}", json=claims)
        assert answer.status_code == 204, answer.text


@contextmanager
def oidc_provider(host: str = "localhost") -> Iterator[OidcProvider]:
    """The provider on a free port of ``host``, until the block ends."""
    with warnings.catch_warnings():  # authlib's deprecation of its own jose module
        warnings.simplefilter("ignore", DeprecationWarning)
        import oidc_provider_mock

    app = oidc_provider_mock.app(require_nonce=True)
    holder: list[OidcProvider] = []

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/oauth2/token":
            return app(environ, start_response)  # type: ignore[no-any-return]
        return _rewritten(app, holder[0], environ, start_response)

    server = werkzeug.serving.make_server(host, 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        holder.append(OidcProvider(f"http://{host}:{server.server_port}"))
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _rewritten(
    app: Any, provider: OidcProvider, environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """The token endpoint's answer, its ID token noted and, with ``tamper``, replaced."""
    answered: dict[str, Any] = {}

    def keep(status: str, headers: list[tuple[str, str]], *rest: Any) -> None:
        answered.update(status=status, headers=headers)

    body = b"".join(app(environ, keep))
    document = json.loads(body) if body.startswith(b"{") else None
    if isinstance(document, dict) and isinstance(document.get("id_token"), str):
        provider.issued.append(document["id_token"])
        if provider.tamper is not None:
            document["id_token"] = provider.tamper(document["id_token"])
        body = json.dumps(document).encode()
    headers = [(k, v) for k, v in answered["headers"] if k.lower() != "content-length"]
    start_response(answered["status"], [*headers, ("Content-Length", str(len(body)))])
    return [body]


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (to build a forged token from a real one)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def resign(token: str, *, algorithm: str = "RS256", key: Any = None, **changes: Any) -> str:
    """``token``'s claims (with ``changes``) signed again: by a new RSA key under the same
    ``kid`` unless ``key`` is given, with ``algorithm`` (``none``: unsigned)."""
    kid = jwt.get_unverified_header(token).get("kid")
    headers = {"kid": kid} if kid else None
    claims = claims_of(token) | changes
    if algorithm == "none":
        return jwt.encode(claims, "", algorithm="none", headers=headers)
    if key is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)
