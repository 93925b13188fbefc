"""Single sign-on's HTTP calls to the OpenID Connect provider (issue 18): its discovery
document and its keys (both cached), and the exchange of a code for an ID token. Every
decision is oidc.py's.

Why not a client library: authlib would bring its own HTTP stack (httpx, beside the httpx2
the coordinator already uses) for what is here three requests; PyJWT, already a dependency,
verifies the token (its ``PyJWKClient`` fetches keys with blocking urllib, so the keys are
fetched here, with httpx2, and handed to PyJWT).

The discovery document is kept for :data:`DISCOVERY_TTL`, the keys likewise; a token signed
with a key the cached set lacks makes the keys be fetched again (providers rotate them), at
most once per :data:`KEYS_REFETCH` so that nothing a token says can make the coordinator
hammer the provider. The client secret comes from ``FULMEN_OIDC_CLIENT_SECRET`` or the file
``FULMEN_OIDC_CLIENT_SECRET_FILE``, read once when the coordinator starts; it is sent only to
the token endpoint, never logged.

Refusals are :class:`~fulmen.errors.SignInError`: ``sso_provider`` (not reached, or an answer
that is not what the protocol says), ``sso_refused`` (the provider refused the code, with its
own words), and oidc.py's ``sso_token``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx2

from fulmen.config import CoordinatorSettings, OidcSettings
from fulmen.coordinator import oidc
from fulmen.errors import ConfigError, SignInError

__all__ = ["DISCOVERY_TTL", "KEYS_REFETCH", "OidcClient"]

log = logging.getLogger(__name__)

#: Seconds a discovery document and a key set are used before they are fetched again.
DISCOVERY_TTL: Final = 3600.0
#: Seconds between two fetches of the keys prompted by a token naming an unknown key.
KEYS_REFETCH: Final = 60.0
#: Seconds one request to the provider may take: a person waits on the sign-in page.
TIMEOUT: Final = 10.0
#: The longest provider's error description shown on the sign-in page.
_DESCRIPTION_CHARS: Final = 300


class OidcClient:
    """One configured provider, for the life of the coordinator."""

    def __init__(
        self,
        settings: OidcSettings,
        client_secret: str,
        *,
        timeout: float = TIMEOUT,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._secret = client_secret
        self._timeout = timeout
        self._transport = transport
        self._provider: tuple[float, oidc.Provider] | None = None
        self._keys: tuple[float, dict[str, Any]] | None = None

    @classmethod
    def from_settings(cls, settings: CoordinatorSettings) -> OidcClient | None:
        """The configured provider's client, ``None`` without one.

        Raises:
            ConfigError: the client secret's file cannot be read, or is empty.
        """
        configured = settings.oidc
        if configured is None:
            return None
        if configured.client_secret is not None:
            return cls(configured, configured.client_secret.value)
        assert configured.client_secret_file is not None  # config.py requires one of them
        path = Path(configured.client_secret_file)
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"FULMEN_OIDC_CLIENT_SECRET_FILE: {path} cannot be read "
                f"({getattr(error, 'strerror', None) or type(error).__name__})",
                code="unreadable",
            ) from None
        if not secret:
            raise ConfigError(f"FULMEN_OIDC_CLIENT_SECRET_FILE: {path} is empty", code="missing")
        return cls(configured, secret)

    @property
    def name(self) -> str:
        """How the sign-in page names the provider."""
        return self.settings.name

    async def provider(self) -> oidc.Provider:
        """The provider's discovery document, read (or recalled) and checked."""
        if self._provider is not None and time.monotonic() - self._provider[0] < DISCOVERY_TTL:
            return self._provider[1]
        document = await self._get(oidc.discovery_url(self.settings.issuer))
        provider = oidc.provider_of(document, self.settings.issuer)
        self._provider = (time.monotonic(), provider)
        return provider

    async def start(self, redirect_uri: str) -> tuple[str, oidc.Begun]:
        """Where to send the browser, and the secrets of this sign-in to keep until it
        comes back."""
        begun = oidc.begin()
        url = oidc.authorization_url(
            await self.provider(), self.settings.client_id, redirect_uri, begun
        )
        return url, begun

    async def finish(
        self, code: str, *, redirect_uri: str, verifier: str, nonce: str, now: datetime
    ) -> oidc.Identity:
        """Exchange ``code`` for an ID token and verify it.

        Raises:
            SignInError: ``sso_provider``, ``sso_refused`` or ``sso_token``.
        """
        provider = await self.provider()
        token = await self._exchange(provider, code, redirect_uri, verifier)
        keys = await self._key_set(provider)
        if not oidc.knows_key(token, keys):
            keys = await self._key_set(provider, refresh=True)
        return oidc.verify_id_token(
            token,
            keys,
            provider=provider,
            client_id=self.settings.client_id,
            nonce=nonce,
            now=now,
        )

    # -- internals ---------------------------------------------------------------------------

    async def _key_set(self, provider: oidc.Provider, *, refresh: bool = False) -> dict[str, Any]:
        if self._keys is not None:
            age = time.monotonic() - self._keys[0]
            if age < (KEYS_REFETCH if refresh else DISCOVERY_TTL):
                return self._keys[1]
        keys = await self._get(provider.jwks_uri)
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise _unusable(self.settings.issuer, "its key set (jwks_uri) is not a JWK set")
        self._keys = (time.monotonic(), keys)
        return keys

    async def _exchange(
        self, provider: oidc.Provider, code: str, redirect_uri: str, verifier: str
    ) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        client_id = self.settings.client_id
        auth: tuple[str, str] | None = (client_id, self._secret)
        if provider.token_auth == "client_secret_post":
            form |= {"client_id": client_id, "client_secret": self._secret}
            auth = None
        reply = await self._send("POST", provider.token_endpoint, data=form, auth=auth)
        body = _json(reply)
        if reply.status_code >= 400 or "error" in body:
            error = str(body.get("error") or reply.status_code)
            description = str(body.get("error_description") or "")[:_DESCRIPTION_CHARS]
            log.warning("the sign-in provider refused a code: %s %s", error, description)
            raise SignInError(
                f"the sign-in provider refused the sign-in ({error}{': ' if description else ''}"
                f"{description})",
                code="sso_refused",
            )
        token = body.get("id_token")
        if not isinstance(token, str):
            raise _unusable(self.settings.issuer, "its token endpoint gave no ID token")
        return token

    async def _get(self, url: str) -> Any:
        reply = await self._send("GET", url)
        if reply.status_code != 200:
            raise _unusable(self.settings.issuer, f"{url} answered {reply.status_code}")
        body = _json(reply)
        if not body:
            raise _unusable(self.settings.issuer, f"{url} did not answer with a JSON object")
        return body

    async def _send(self, method: str, url: str, **options: Any) -> httpx2.Response:
        try:
            async with httpx2.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                return await http.request(method, url, **options)
        except httpx2.HTTPError as error:
            log.warning("the sign-in provider at %s was not reached: %r", url, error)
            raise _unusable(
                self.settings.issuer, f"{url} was not reached ({type(error).__name__})"
            ) from None


def _json(reply: httpx2.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _unusable(issuer: str, what: str) -> SignInError:
    return SignInError(
        f"the sign-in provider {issuer} cannot be used now: {what}", code="sso_provider"
    )
