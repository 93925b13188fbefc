"""Where the coordinator may send a request whose URL a project admin chose (an alert
webhook, an OAuth2 token endpoint): the outbound destination policy, without I/O.

Such a URL is not the operator's, so by default it may not lead the coordinator to the
host's own services or to its private network (server-side request forgery): loopback,
private (RFC 1918), shared (100.64.0.0/10), link-local (169.254.0.0/16, where cloud metadata
services answer, and fe80::/10), unique-local (fc00::/7), unspecified, multicast, reserved
and documentation addresses are refused, and so is any IPv6 form that carries one of those
IPv4 addresses (IPv4-mapped, 6to4, NAT64, IPv4-compatible). Python's ``is_global`` is the
base; the IPv6 wrappers, multicast and site-local are checked here because ``is_global``
(3.11) lets them through.

The operator lets chosen internal destinations through with ``FULMEN_OUTBOUND_ALLOW``: host
names, IP addresses and networks, each with an optional port (``hooks.internal``,
``10.1.2.3:8080``, ``[fd00::1]:443``, ``10.20.0.0/16``). A name lets that name through
whatever it resolves to (the operator trusts its DNS); an address or network lets those
addresses through.

The decision is taken twice: when a URL is saved, on its host when that is an address
written out or ``localhost`` (:func:`check_url`: the admin hears at once), and when the
coordinator connects, on every address the name resolved to (:meth:`Policy.refusal`, from
``coordinator/outbound_http.py``), so that a name resolving to an internal address, or one
whose DNS answer changes after the save (rebinding), is refused too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias
from urllib.parse import urlsplit

from fulmen.errors import InputError

__all__ = [
    "VARIABLE",
    "Address",
    "Policy",
    "address_refusal",
    "literal_address",
]

#: The operator's setting, named in every refusal so that the admin can ask for it.
VARIABLE: Final = "FULMEN_OUTBOUND_ALLOW"

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4: Final = ipaddress.IPv4Network
_V6: Final = ipaddress.IPv6Network
#: IPv4 ranges refused, most specific words first; anything else not global is refused as
#: "special-purpose".
_V4_REFUSED: Final = (
    (_V4("0.0.0.0/8"), "an unspecified address ('this network')"),
    (_V4("127.0.0.0/8"), "a loopback address (this host)"),
    (_V4("10.0.0.0/8"), "a private address (RFC 1918)"),
    (_V4("172.16.0.0/12"), "a private address (RFC 1918)"),
    (_V4("192.168.0.0/16"), "a private address (RFC 1918)"),
    (_V4("100.64.0.0/10"), "a shared address (carrier-grade NAT, RFC 6598)"),
    (_V4("169.254.0.0/16"), "a link-local address (where cloud metadata services answer)"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)
_V6_REFUSED: Final = (
    (_V6("::1/128"), "a loopback address (this host)"),
    (_V6("::/128"), "an unspecified address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("fc00::/7"), "a unique-local address (a private network)"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("2001::/32"), "a Teredo tunnel address"),
    (_V6("::/8"), "a reserved address"),
)
_NAT64: Final = _V6("64:ff9b::/96")
#: Host names that are this host by definition (RFC 6761 §6.3).
_LOOPBACK_NAME: Final = re.compile(r"^(?:.+\.)?localhost\.?$", re.IGNORECASE)
#: The numbers inet_aton takes as an IPv4 address (``2130706433``, ``0x7f.1``, ``0177.0.0.1``).
_AT0N_PART: Final = re.compile(r"^(?:0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")
_ENTRY_PORT: Final = re.compile(r"^(?P<host>\[[^\]]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?$")


def address_refusal(address: Address) -> str | None:
    """Why ``address`` is no destination for a project admin's URL (words that complete
    "… is …"), or None when it is a global address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            inner = address_refusal(embedded)
            return None if inner is None else f"{inner}, in IPv6 form"
        for network, words in _V6_REFUSED:
            if address in network:
                return words
    else:
        for network4, words in _V4_REFUSED:
            if address in network4:
                return words
    if not address.is_global:
        return "a special-purpose address (not globally routable)"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to the IPv4 network: IPv4-mapped (and its
    translated form ``::ffff:0:a.b.c.d``), IPv4-compatible, 6to4 and NAT64's well-known
    prefix."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    value = int(address)
    if address in _NAT64 or value >> 32 in (0, 0xFFFF_0000):
        if value >> 32 == 0 and value < 2**16:
            return None  # :: and ::1, and the rest of ::/112: refused as they are
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    return None


def literal_address(host: str) -> Address | None:
    """The address ``host`` (a URL's host, brackets or not) writes out, in any form a resolver
    takes as one (the decimal ``2130706433``, the hex and octal ``0x7f.0.0.1``, the short
    ``127.1``), or None for a name."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    parts = bare.removesuffix(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(_AT0N_PART.match(part) for part in parts):
        return None
    if any(part.lower() == "0x" for part in parts):
        return None
    *head, last = [_number(part) for part in parts]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << 8 * (4 - len(head)) | last)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part, 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


@dataclass(frozen=True)
class _Allowed:
    network: Network | None
    name: str | None
    port: int | None

    def takes(self, port: int) -> bool:
        return self.port is None or self.port == port


@dataclass(frozen=True)
class Policy:
    """The operator's allowances over the default refusal of internal destinations."""

    allowed: tuple[_Allowed, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> Policy:
        """The policy that lets ``entries`` (``FULMEN_OUTBOUND_ALLOW``'s items) through.

        Raises:
            ValueError: naming the entry that is no host name, address or network.
        """
        return cls(tuple(_entry(entry.strip()) for entry in entries if entry.strip()))

    def refusal(self, host: str, port: int, addresses: Sequence[Address]) -> str | None:
        """Why a connection to ``host``:``port``, resolved to ``addresses``, is refused (a
        sentence naming the host and how the operator allows it), or None."""
        name = host.strip("[]").lower().removesuffix(".")
        if any(rule.name == name and rule.takes(port) for rule in self.allowed):
            return None
        for address in addresses:
            why = address_refusal(address)
            if why is None or self._allows(address, port):
                continue
            shown = name if name == str(address) else f"{name} ({address})"
            return (
                f"{shown} is {why}: the coordinator does not send there for a project; the "
                f"operator can allow it with {VARIABLE}"
            )
        return None

    def url_refusal(self, url: str) -> str | None:
        """The refusal :meth:`refusal` would give ``url`` when its host is an address written
        out or ``localhost``, known without asking DNS; None for any other name."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            return None  # the URL's own check says what is wrong with it
        host = parts.hostname or ""
        address = literal_address(host)
        if address is not None:
            return self.refusal(host, port, [address])
        if _LOOPBACK_NAME.match(host):
            return self.refusal(host, port, [ipaddress.IPv4Address("127.0.0.1")])
        return None

    def check_url(self, url: str, field: str) -> None:
        """Refuse, when saved, a URL :meth:`url_refusal` refuses.

        Raises:
            InputError: ``destination_refused``, naming ``field``.
        """
        why = self.url_refusal(url)
        if why is not None:
            raise InputError(why, code="destination_refused", field=field)

    def _allows(self, address: Address, port: int) -> bool:
        return any(
            rule.network is not None
            and rule.network.version == address.version
            and address in rule.network
            and rule.takes(port)
            for rule in self.allowed
        )


def _entry(entry: str) -> _Allowed:
    try:
        return _Allowed(ipaddress.ip_network(entry, strict=False), None, None)
    except ValueError:
        pass
    found = _ENTRY_PORT.match(entry)
    if found is None:
        raise ValueError(f"{entry!r} is no host name, IP address or network (with :port)")
    host, port_text = found["host"], found["port"]
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{entry!r} has no port between 1 and 65535")
    address = literal_address(host)
    if address is not None:
        return _Allowed(ipaddress.ip_network(address), None, port)
    name = host.lower().removesuffix(".")
    if host.startswith("[") or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", name):
        raise ValueError(f"{entry!r} is no host name, IP address or network (with :port)")
    return _Allowed(None, name, port)
