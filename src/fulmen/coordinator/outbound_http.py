"""The HTTP transport of requests to URLs a project admin chose (alert webhooks, OAuth2 token
endpoints): it connects only where the outbound policy (``fulmen.outbound``) allows, judged
on the addresses actually connected to.

The check is in an httpcore2 network backend (``AsyncNetworkBackend.connect_tcp``, the
documented extension point of httpcore's connection pool): it resolves the host once, checks
every address the name resolved to (one refused address refuses the name: a DNS answer
mixing a public and an internal address is an attack), then connects to a checked address,
never to the name, so a DNS answer that changes between the check and the connection
(rebinding) cannot pass. TLS is unchanged: httpcore starts it with the URL's host name as
the server name, so the certificate is still verified for the name.

httpx2's ``AsyncHTTPTransport`` takes no network backend, and replacing the pool it builds
would mean writing its private ``_pool``; so :class:`OutboundTransport` is a small
``AsyncBaseTransport`` (httpx's public interface for transports) over an
``httpcore2.AsyncConnectionPool`` built with the backend, translating httpcore2's errors to
httpx2's as httpx2's own transport does. A refusal is :class:`DestinationRefused`, an
``httpx2.ConnectError``: callers that already handle an unreachable URL handle it, and the
ones that can say more catch it first. The transport never follows redirects (it sends one
request; redirects are httpx2's client's, and the callers turn them off).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, NoReturn

import httpcore2
import httpx2

from fulmen.outbound import Address, Policy, literal_address

__all__ = ["DestinationRefused", "Outbound", "OutboundTransport", "Resolver", "system_resolve"]

#: A host name and port to the addresses to try, in order (``getaddrinfo`` by default; the
#: tests give names of their own).
Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]

#: httpcore2's errors as httpx2's, the most specific first.
_ERRORS: Final[tuple[tuple[type[Exception], type[httpx2.HTTPError]], ...]] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.ProxyError, httpx2.ProxyError),
)


class DestinationRefused(httpx2.ConnectError):
    """The outbound policy refused every way to the URL's host; the message says why and how
    the operator allows it, and nothing was sent."""


async def system_resolve(host: str, port: int) -> Sequence[Address]:
    """The addresses ``getaddrinfo`` gives ``host`` for a TCP connection, in its order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Outbound:
    """The policy and how names are resolved: what a transport needs (one per coordinator)."""

    policy: Policy
    resolve: Resolver = field(default=system_resolve)

    def transport(self) -> OutboundTransport:
        return OutboundTransport(self)


class _CheckedBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        why = self._outbound.policy.refusal(host, port, addresses)
        if why is not None:
            raise DestinationRefused(why)
        last: Exception = httpcore2.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore2.ConnectError as error:
                last = error
        raise last

    async def _addresses(self, host: str, port: int, timeout: float | None) -> Sequence[Address]:
        written = literal_address(host)
        if written is not None:
            return [written]
        try:
            async with asyncio.timeout(timeout):
                return await self._outbound.resolve(host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as error:
            raise httpcore2.ConnectError(f"{host} cannot be resolved ({error})") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise DestinationRefused("a project's requests do not go to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport for a project's URLs: HTTP/1.1, TLS verified, the policy checked at
    each connection."""

    def __init__(self, outbound: Outbound, *, verify: ssl.SSLContext | bool = True) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify),
            network_backend=_CheckedBackend(outbound),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        core = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            answer = await self._pool.handle_async_request(core)
        except Exception as error:
            _reraise(error)
        assert isinstance(answer.stream, AsyncIterable)
        return httpx2.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except Exception as error:
            _reraise(error)

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


def _reraise(error: Exception) -> NoReturn:
    """Raise ``error``, as httpx2's error when it is httpcore2's."""
    for core, mapped in _ERRORS:
        if isinstance(error, core):
            raise mapped(str(error)) from error
    raise error
