"""Listening sockets for Fulmen's servers, bound before anything else starts, so that an
address in use is one line naming it and the flag that changes it, never a traceback from deep
inside an event loop (issue 21), and so that every server's accepted connections get the same
options.
"""

from __future__ import annotations

import errno
import socket

from fulmen.errors import ConfigError

__all__ = ["bind"]


def bind(host: str, port: int, *, flag: str = "--port") -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port). TCP_NODELAY on the
    listener is inherited by every accepted connection (Linux): without it, on a kept-alive
    connection a response's body waits for the client's delayed ACK of its headers, 40 ms per
    request (uvicorn sets it only on sockets it binds itself).

    Raises:
        ConfigError: ``address_in_use`` (another program listens there) or ``bad_value`` (the
            address cannot be bound), naming the address and ``flag``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {host}:{port}: another program listens there; {flag} "
                "picks another port",
                code="address_in_use",
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}", code="bad_value"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
