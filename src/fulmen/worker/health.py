"""The worker's small HTTP server: liveness, readiness and Prometheus metrics (spec §9.2).

=============  =================================================================================
``GET /``      200, empty: alive (ws-worker's liveness check, kept for existing probes)
``/livez``     the same
``/healthz``   a JSON summary: connected, active runs, capacity, sandbox level; 200, or 503
               with ``"status": "unhealthy"`` and the ``problem`` while the worker cannot do
               its work as configured (run tokens keep failing: it stopped claiming)
``/readyz``    200 while ``worker:queue`` is joined and the worker claims, else 503
``/metrics``   Prometheus text: runs active, claimed, completed by reason, refused by code,
               refused in a row, claiming stopped, capacity, connection, sandbox isolation
=============  =================================================================================

A worker that stopped claiming stays alive (``/`` and ``/livez`` answer 200): restarting it
with the same settings would not help, and its runs in flight still report.

Anything else is 404; methods other than GET and HEAD are 405. One request per connection,
answered and closed: probes and scrapers need no more. The metrics live in the worker's own
registry, never the process-global one (STYLE.md P13).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Info
from prometheus_client.exposition import generate_latest

from fulmen.listen import bind

__all__ = ["HealthServer", "Metrics", "Status"]

log = logging.getLogger(__name__)

_READ_TIMEOUT: Final = 5.0
_REASONS: Final = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}


class Metrics:
    """The worker's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active = Gauge("fulmen_worker_runs_active", "Runs executing now.", registry=r)
        self.claimed = Counter("fulmen_worker_runs_claimed", "Runs claimed.", registry=r)
        self.completed = Counter(
            "fulmen_worker_runs_completed", "Runs reported, by exit reason.", ["reason"], registry=r
        )
        self.refused = Counter(
            "fulmen_worker_runs_refused",
            "Runs refused because their run token did not verify, by why.",
            ["code"],
            registry=r,
        )
        self.refused_in_a_row = Gauge(
            "fulmen_worker_runs_refused_in_a_row",
            "Run tokens that did not verify since the last one that did.",
            registry=r,
        )
        self.claiming_stopped = Gauge(
            "fulmen_worker_claiming_stopped",
            "1 while the worker claims nothing because run tokens keep failing (see /healthz).",
            registry=r,
        )
        self.capacity = Gauge("fulmen_worker_capacity", "Slots over all workloops.", registry=r)
        self.connected = Gauge(
            "fulmen_worker_connected", "1 while worker:queue is joined.", registry=r
        )
        self.sandbox = Info("fulmen_worker_sandbox", "Isolation each run's child gets.", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True, slots=True)
class Status:
    """What ``/healthz`` and ``/readyz`` report."""

    ready: bool
    active: int
    capacity: int
    sandbox: str
    problem: str | None = None
    """Why the worker cannot work as configured; ``None`` when it can."""


class HealthServer:
    """Serves the endpoints above.

    Args:
        metrics: rendered on ``/metrics``.
        status: called per request for ``/healthz`` and ``/readyz``.
        host, port: where to listen; port 0 picks a free one (see :attr:`port`).

    *Resource handling*: :meth:`start` binds, :meth:`close` stops listening.
    """

    def __init__(
        self,
        metrics: Metrics,
        status: Callable[[], Status],
        *,
        host: str,
        port: int,
        sock: socket.socket | None = None,
    ) -> None:
        self._sock = sock
        self._metrics = metrics
        self._status = status
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self.port = port
        """The bound port, once started."""

    async def start(self) -> None:
        sock = self._sock or bind(self._host, self._port, flag="-p/--port (WORKER_PORT)")
        self._sock = None  # a socket is served once
        self._server = await asyncio.start_server(self._handle, sock=sock)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path = _request_line(head)
            status, content_type, body = self.respond(method, path)
            writer.write(_response(status, content_type, body, send_body=method != "HEAD"))
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """The status, content type and body for one request (pure apart from the status
        callback, so the routes are tested without sockets)."""
        if path not in ("/", "/livez", "/healthz", "/readyz", "/metrics"):
            return 404, "text/plain", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self._metrics.render()
        if path in ("/", "/livez"):
            return 200, "text/plain", b""
        status = self._status()
        if path == "/readyz":
            if status.ready and status.problem is None:
                return 200, "text/plain", b"ready\n"
            return 503, "text/plain", b""
        summary: dict[str, object] = {
            "status": "ok" if status.problem is None else "unhealthy",
            "connected": status.ready,
            "active": status.active,
            "capacity": status.capacity,
            "sandbox": status.sandbox,
        }
        if status.problem is not None:
            summary["problem"] = status.problem
        code = 200 if status.problem is None else 503
        return code, "application/json", json.dumps(summary).encode()


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) < 2:
        return "", ""
    return parts[0].upper(), parts[1].split("?", 1)[0]


def _response(status: int, content_type: str, body: bytes, *, send_body: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (body if send_body else b"")
