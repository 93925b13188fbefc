"""The npm registry, asked which versions an adaptor package has (issue 15).

When a workflow is saved, each JavaScript job's adaptor is resolved to an exact version
(fulmen.coordinator.resolution); this module is the one question that needs the network: a
package's packument (``GET <registry>/<package>``), in npm's abbreviated form
(``application/vnd.npm.install-v1+json``: the dist-tags and versions, without the readmes).

The registry is ``FULMEN_NPM_REGISTRY`` (npm's own by default; a mirror or a private registry
that speaks npm's API works too). Each save opens one :class:`RegistrySession`, which asks
for each package once and keeps no connection after the save. Every failure is a Fulmen
error naming the package and the registry (never its credentials, if its URL has any):

* the registry says the package does not exist (404): InputError ``unknown_adaptor``;
* it cannot be reached, or does not answer within ``FULMEN_NPM_REGISTRY_TIMEOUT_SECONDS``:
  RegistryError ``registry_unreachable``;
* it answers with another status, or with something that is not a packument: RegistryError
  ``registry_error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import httpx2

from fulmen.adaptor_versions import Packument
from fulmen.errors import InputError, RegistryError

__all__ = ["NpmRegistry", "RegistrySession"]

#: npm's own client asks for the abbreviated document first, the full one failing that.
_ACCEPT: Final = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


class NpmRegistry:
    """Where packuments come from: the registry's base URL and how long one may take."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self._transport = transport

    @property
    def shown(self) -> str:
        """The base URL as messages show it: without a user or password."""
        parts = urlsplit(self.base_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[RegistrySession]:
        """One HTTP client for the questions of one save, closed after it."""
        async with httpx2.AsyncClient(
            timeout=self.timeout,
            headers={"Accept": _ACCEPT},
            follow_redirects=True,
            transport=self._transport,
        ) as client:
            yield RegistrySession(self, client)


class RegistrySession:
    """Packuments for one save, each package asked for once."""

    def __init__(self, registry: NpmRegistry, client: httpx2.AsyncClient) -> None:
        self._registry = registry
        self._client = client
        self._known: dict[str, Packument] = {}

    async def packument(self, package: str) -> Packument:
        """``package``'s dist-tags and versions.

        Raises:
            InputError: ``unknown_adaptor``, the registry has no such package.
            RegistryError: ``registry_unreachable`` or ``registry_error``.
        """
        if package not in self._known:
            self._known[package] = await self._fetch(package)
        return self._known[package]

    async def _fetch(self, package: str) -> Packument:
        where = self._registry.shown
        # A scoped name's slash is encoded (@openfn%2Flanguage-common), as npm's client does.
        url = self._registry.base_url + quote(package, safe="@")
        try:
            response = await self._client.get(url)
        except httpx2.TimeoutException:
            raise RegistryError(
                f"the npm registry {where} did not answer within {self._registry.timeout:g} s "
                f"about {package}",
                code="registry_unreachable",
            ) from None
        except httpx2.HTTPError as error:
            raise RegistryError(
                f"the npm registry {where} could not be reached about {package}: "
                f"{type(error).__name__}: {error}",
                code="registry_unreachable",
            ) from None
        if response.status_code == 404:
            raise InputError(
                f"the npm registry {where} has no package {package}", code="unknown_adaptor"
            )
        if response.status_code != 200:
            raise RegistryError(
                f"the npm registry {where} answered {response.status_code} about {package}",
                code="registry_error",
            )
        try:
            document = response.json()
        except ValueError:
            raise RegistryError(
                f"the npm registry {where} answered about {package} with something that is "
                "not JSON",
                code="registry_error",
            ) from None
        return Packument.from_json(package, document)
