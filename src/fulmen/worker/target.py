"""Where the coordinator is: its base URL, the socket URL the worker opens, and the addresses
to try (spec §1.1, §10.6). Pure apart from :func:`resolve`, which asks the system resolver.

The base URL is configured as ws-worker's is (``ws://localhost:4000/worker``); the Phoenix
client appends ``/websocket`` and four parameters. That URL carries the worker token, so it is
only ever handed to the WebSocket client, never written to a log: messages name the base URL.

Addresses are tried IPv4 first, then in the resolver's order: Lightning usually listens on
IPv4 only (its production default is 127.0.0.1), while Node 17+ and some resolvers answer
``::1`` first for ``localhost``, which is the trap the seeds' workaround is about.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import urlencode, urlsplit

from fulmen.contract import API_VERSION
from fulmen.errors import ConfigError

__all__ = [
    "PHOENIX_VSN",
    "Address",
    "Resolver",
    "Target",
    "parse_target",
    "prefer_ipv4",
    "resolve",
    "socket_url",
]

PHOENIX_VSN: Final = "2.0.0"
"""Selects Phoenix's V2 array framing (§1.1)."""
Address: TypeAlias = tuple[int, str]
"""An address family and an IP address to try."""
Resolver: TypeAlias = Callable[[str, int], Awaitable[list[Address]]]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the coordinator is: the base URL as configured, and its parts."""

    url: str
    secure: bool
    host: str
    port: int
    path: str


def parse_target(url: str, *, variable: str = "WORKER_LIGHTNING_SERVICE_URL") -> Target:
    """Check a base URL such as ``ws://localhost:4000/worker``.

    Raises:
        ConfigError: ``bad_url``, naming ``variable``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(
            f"{variable} must be a ws:// or wss:// URL like ws://localhost:4000/worker, "
            f"not {url!r}",
            code="bad_url",
        )
    secure = parts.scheme == "wss"
    return Target(
        url=url,
        secure=secure,
        host=parts.hostname,
        port=port or (443 if secure else 80),
        path=parts.path.rstrip("/"),
    )


def socket_url(target: Target, token: str, worker_version: str) -> str:
    """The URL ws-worker opens: base + ``/websocket`` and its four parameters, in the JS
    client's order (user parameters first, ``vsn`` last; §1.1)."""
    query = urlencode(
        [
            ("token", token),
            ("api_version", API_VERSION),
            ("worker_version", worker_version),
            ("vsn", PHOENIX_VSN),
        ]
    )
    base = target.url.split("?", 1)[0].rstrip("/")
    return f"{base}/websocket?{query}"


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, IPv4 first, each once (§10.6).

    Raises:
        OSError: the name does not resolve.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        address = (int(family), str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return prefer_ipv4(found)


def prefer_ipv4(addresses: list[Address]) -> list[Address]:
    """IPv4 addresses first, each family in the resolver's order (§10.6: Lightning usually
    listens on IPv4 only)."""
    return sorted(addresses, key=lambda a: a[0] != socket.AF_INET)
