"""Where the coordinators are: their base URLs, the socket URL the worker opens, and the order
in which to try their addresses (spec §1.1, §10.6). Pure apart from :func:`resolve`, which
asks the system resolver.

A base URL is configured as ws-worker's is (``ws://localhost:4000/worker``); the Phoenix
client appends ``/websocket`` and four parameters. That URL carries the worker token, so it is
only ever handed to the WebSocket client, never written to a log: messages name the base URL.

Several base URLs, comma-separated, name replicas of one coordinator that share a database (a
Fulmen extension: ws-worker takes one). Each name stands for every address it resolves to, so
one name with several addresses is several replicas too. Every (address, port) is an
:class:`Endpoint`, and :func:`failover_order` says in which order to try them:

* IPv4 addresses first, IPv6 after: Lightning usually listens on IPv4 only (its production
  default is 127.0.0.1), while Node 17+ and some resolvers answer ``::1`` first for
  ``localhost``, which is the trap the seeds' workaround is about.
* Within each family, in an order of the worker's own (a hash salted with its id), so that
  workers given the same list spread over the replicas instead of all taking the first; it
  does not depend on the resolver's order, which DNS round robin changes on every answer.
* After a connection ends, starting with the endpoint after the one it was on: the replica
  that dropped the worker is the likeliest to be down, and the workers it dropped go on to
  different replicas because each has its own order.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import urlencode, urlsplit

from fulmen.contract import API_VERSION
from fulmen.errors import ConfigError

__all__ = [
    "PHOENIX_VSN",
    "Address",
    "Endpoint",
    "Resolver",
    "Target",
    "endpoints_of",
    "failover_order",
    "parse_target",
    "parse_targets",
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


def parse_targets(
    text: str, *, variable: str = "WORKER_LIGHTNING_SERVICE_URL"
) -> tuple[Target, ...]:
    """Check one base URL, or several separated by commas (replicas sharing a database);
    blanks around a comma and a URL given twice are ignored.

    Raises:
        ConfigError: ``bad_url``, naming ``variable`` and the URL at fault.
    """
    urls = [part.strip() for part in text.split(",")]
    given = list(dict.fromkeys(url for url in urls if url))
    if not given:
        given = [text]  # let parse_target say what is wrong with it
    return tuple(parse_target(url, variable=variable) for url in given)


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


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address of one coordinator: where a connection is tried."""

    target: Target
    family: int
    ip: str

    def __str__(self) -> str:
        return f"[{self.ip}]" if ":" in self.ip else self.ip


def endpoints_of(resolved: Iterable[tuple[Target, Sequence[Address]]]) -> list[Endpoint]:
    """Each target's addresses as endpoints, in the order given; an (address, port) reached
    through two URLs is one endpoint, the first URL's."""
    seen: set[tuple[str, int]] = set()
    found: list[Endpoint] = []
    for target, addresses in resolved:
        for family, ip in addresses:
            if (ip, target.port) not in seen:
                seen.add((ip, target.port))
                found.append(Endpoint(target, family, ip))
    return found


def failover_order(
    endpoints: Sequence[Endpoint], *, salt: str, after: Endpoint | None = None
) -> list[Endpoint]:
    """The order in which to try ``endpoints`` (see the module docstring): IPv4 before IPv6,
    each family in the order of ``salt``, and the family of ``after`` (the endpoint of the
    last connection) rotated to start just past it."""

    def rank(endpoint: Endpoint) -> bytes:
        key = f"{salt}|{endpoint.ip}|{endpoint.target.port}".encode()
        return hashlib.sha256(key).digest()

    order: list[Endpoint] = []
    for v4 in (True, False):
        family = sorted((e for e in endpoints if (e.family == socket.AF_INET) == v4), key=rank)
        if after is not None and after in family:
            cut = family.index(after) + 1
            family = family[cut:] + family[:cut]
        order.extend(family)
    return order
