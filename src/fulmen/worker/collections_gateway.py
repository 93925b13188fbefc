"""The collections gateway: how a run's job code reaches its project's collections, and only
those, from inside the sandbox (issue 19).

ws-worker hands a job the run token and the coordinator's collections URL
(``collections_token``, ``collections_endpoint`` in its configuration). Fulmen does not: the
run token also joins the run's channel and could report for the run, and the sandbox keeps
job code off the host's loopback, where the coordinator may be. Instead the worker listens
on one loopback port of its own (chosen at start), which the sandbox forwards into the runs'
network namespace as it forwards the ports an operator allows (``FULMEN_ALLOW_NET``); each
run gets a random token of its own (:meth:`CollectionsGateway.grant`) that this gateway maps
to the run's token, and that dies when the run ends (:meth:`CollectionsGateway.revoke`).

What it forwards: ``GET``, ``PUT``, ``POST`` and ``DELETE`` on ``/collections/<name>`` and
``/collections/<name>/<key>`` (Lightning's collections API; a key may hold ``/``), with
their query and only their ``Content-Type`` and ``Accept`` headers, to the
coordinator's collections URL, the request's and the answer's bodies streamed (a get of many
items is never held here). Anything else is refused with a JSON ``{"code", "message"}``:
another path (404 ``not_found``), another method (405 ``method_not_allowed``), a token that
is not a live run's (401 ``unauthorized``), a path that could climb out of ``/collections``
(400 ``bad_path``), a request HTTP/1.1 does not allow (400 ``bad_request``). One request per
connection, closed after the answer.

Its peer is hostile job code, so HTTP is read by h11 (a sans-I/O parser that refuses the
ambiguous framings request smuggling lives on: a length and a chunked body at once, bad
chunk sizes, oversized heads), not by hand. And it is bounded, so that no run can take the
worker down with it: at most :data:`MAX_CONNECTIONS` connections are served at once (more are
answered 503 ``busy`` and closed unread, before a descriptor per connection can run the
worker out), a head must arrive within :data:`HEAD_TIMEOUT_S`, and one run has at most
:data:`MAX_PER_RUN` requests in flight (429 ``too_many_requests``). A run holding every
connection unauthenticated keeps the other runs of this worker from their collections for
as long as it holds them, never from anything else.

Under the network policy ``outside`` all runs of a worker share one network namespace, so
the port is theirs in common: the token (256 random bits a run) is what tells them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import h11
import httpx2

from fulmen.listen import bind

__all__ = [
    "HEAD_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "MAX_PER_RUN",
    "NETWORK_NONE",
    "NO_GATEWAY",
    "PREFIX",
    "CollectionsGateway",
    "Refusal",
    "collections_url",
    "route",
]

log = logging.getLogger(__name__)

#: The path jobs' requests start with, the same as Lightning's.
PREFIX: Final = "/collections"
#: Why a run's jobs cannot reach collections (``collections_unavailable``: the adaptors say it).
NETWORK_NONE: Final = (
    "collections are not reachable from this run: the worker's network policy is none "
    "(FULMEN_NETWORK=none), which gives runs no network at all; a worker with the network "
    "policy outside (the default) or host gives jobs their project's collections"
)
NO_GATEWAY: Final = "collections are not reachable from this run: this worker serves none"
#: Connections served at once, all runs together (more are answered 503 and closed unread).
MAX_CONNECTIONS: Final = 256
#: Requests of one run in flight at once.
MAX_PER_RUN: Final = 16
#: How long a connection may take to send its request's head.
HEAD_TIMEOUT_S: Final = 10.0
_METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE"})
#: How much of a head may be held unfinished (h11's bound: a head is at most this and one read).
_HEAD_LIMIT: Final = 16 * 1024
_READ_TIMEOUT: Final = 30.0
_CHUNK: Final = 1 << 16
#: Headers passed on to the coordinator; nothing else of the job's request goes (cookies,
#: a forged ``X-Forwarded-For``).
_PASSED: Final = ("content-type", "accept")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer of the gateway's own."""

    status: int
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"code": self.code, "message": self.message}).encode()


def collections_url(configured: str | None, socket_base: str) -> str:
    """Where the coordinator's collections API is: ``WORKER_COLLECTIONS_URL``, else the
    coordinator's HTTP address from the worker's socket URL (``ws://host:4000/worker`` →
    ``http://host:4000/collections``), as Lightning serves both from one address."""
    if configured:
        return configured.rstrip("/")
    scheme, _, rest = socket_base.partition("://")
    http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    host, _, path = rest.partition("/")
    base = "/" + path.rstrip("/")
    base = base.removesuffix("/worker").rstrip("/")
    return f"{http}://{host}{base}{PREFIX}"


def route(method: str, target: str) -> tuple[str, Refusal | None]:
    """The part of ``target`` after ``/collections`` to forward (with its query), or why not.

    Only ``/collections/<name>`` and ``/collections/<name>/<key>`` (a key may hold ``/``, as
    the adaptor joins it into the path): no other path of the coordinator, and no segment
    that could climb out once something on the way decodes or normalises it (``..``, an
    encoded ``/`` in the name)."""
    if method not in _METHODS:
        return "", Refusal(
            405,
            "method_not_allowed",
            f"{method} is not a collections request (GET, PUT, POST, DELETE)",
        )
    path, sep, query = target.partition("?")
    if not path.startswith(PREFIX + "/"):
        return "", Refusal(404, "not_found", f"only {PREFIX}/<name>[/<key>] is served here")
    rest = path[len(PREFIX) + 1 :]
    if any(ord(c) <= 0x20 or c in "\\#" for c in rest):
        return "", Refusal(400, "bad_path", f"not a collection name or key: {rest!r}")
    name, _, key = rest.partition("/")
    parts = [unquote(name)] + ([p for p in unquote(key).split("/")] if key else [])
    if "/" in unquote(name) or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        return "", Refusal(400, "bad_path", f"not a collection name or key: {rest!r}")
    return "/" + rest + (sep + query if sep else ""), None


class CollectionsGateway:
    """The worker's collections gateway; see the module docstring.

    Args:
        sock: a listening socket; by default one on a free loopback port, bound here so that
            the port is known before the sandbox starts (it forwards it into the runs'
            network).
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        #: The coordinator's collections URL, asked at each request (the worker may move
        #: between coordinators that share a store); the worker sets it.
        self.upstream: Callable[[], str] = lambda: ""
        self._sock = sock or bind("127.0.0.1", 0, flag="(the collections gateway)")
        self.port: int = self._sock.getsockname()[1]
        self._tokens: dict[str, str] = {}
        self._open = 0
        self._in_flight: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._client: httpx2.AsyncClient | None = None

    @property
    def allow(self) -> str:
        """The loopback address the sandbox forwards into the runs' network."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """``collections_endpoint`` for jobs: this gateway, as a run reaches it."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def grant(self, run_token: str) -> str:
        """A new token for one run's job code, standing for ``run_token`` until revoked."""
        token = secrets.token_urlsafe(32)
        self._tokens[token] = run_token
        return token

    def settings_for(self, run_token: str, network: str) -> tuple[dict[str, str], str | None]:
        """What a run's jobs get in their configuration (``RunRequest.collections``), and the
        token to revoke when it ends (None when nothing was granted): under the network
        policy ``none`` nothing reaches this gateway, and the jobs are told why."""
        if network == "none":
            return {"collections_unavailable": NETWORK_NONE}, None
        token = self.grant(run_token)
        return {"collections_endpoint": self.endpoint, "collections_token": token}, token

    def revoke(self, token: str) -> None:
        """The run ended: its token opens nothing any more."""
        self._tokens.pop(token, None)

    async def start(self) -> None:
        self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0), follow_redirects=False)
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        else:
            self._sock.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._tokens.clear()

    async def __aenter__(self) -> CollectionsGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            log.warning("collections gateway: %d connections open, one more refused", self._open)
            writer.write(_raw(Refusal(503, "busy", "the collections gateway is busy: retry")))
            await _close(writer)
            return
        self._open += 1
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=_HEAD_LIMIT)
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                request = await _next(http, reader)
            if isinstance(request, h11.Request):
                await self._serve(http, request, reader, writer)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            refusal = Refusal(status, "bad_request", f"not a request HTTP/1.1 allows: {exc}")
            with contextlib.suppress(h11.LocalProtocolError):
                await _answer(http, writer, refusal)
        except (TimeoutError, ConnectionError, OSError):
            pass  # the job went away, or never said what it wanted
        except httpx2.HTTPError as exc:
            # The coordinator's answer broke off: the job sees its answer end unfinished.
            log.warning("collections gateway: the coordinator's answer broke off: %s", exc)
        finally:
            self._open -= 1
            await _close(writer)

    async def _serve(
        self,
        http: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        method = request.method.decode("ascii", "replace")
        rest, refusal = route(method, request.target.decode("ascii", "replace"))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
        token = _bearer(headers)
        if refusal is None and "transfer-encoding" in headers and "content-length" in headers:
            # h11 reads such a body as chunked (RFC 9112 lets a server do so, or refuse it):
            # refused, so that nothing after it can be taken for a request of its own.
            refusal = Refusal(
                400, "bad_request", "a request has a Content-Length or chunks, not both"
            )
        if refusal is None:
            refusal = self._authorize(token)
        if refusal is None and self._in_flight[token] >= MAX_PER_RUN:
            refusal = Refusal(
                429,
                "too_many_requests",
                f"a run may have {MAX_PER_RUN} collections requests in flight at once",
            )
        if refusal is not None:
            await _answer(http, writer, refusal)
            return
        self._in_flight[token] += 1
        try:
            await self._forward(http, method, rest, headers, token, reader, writer)
        finally:
            self._in_flight[token] -= 1
            if not self._in_flight[token]:
                del self._in_flight[token]

    async def _forward(
        self,
        http: h11.Connection,
        method: str,
        rest: str,
        headers: dict[str, str],
        token: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        passed = {k: v for k, v in headers.items() if k in _PASSED}
        passed["authorization"] = f"Bearer {self._tokens[token]}"
        length = headers.get("content-length")
        if length is not None:  # h11 made sure it is one number
            passed["content-length"] = length
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        assert self._client is not None
        request = self._client.build_request(
            method,
            self.upstream() + rest,
            headers=passed,
            content=_body(http, reader) if has_body else None,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.HTTPError as exc:
            log.warning("collections gateway: the coordinator did not answer: %s", exc)
            await _answer(
                http,
                writer,
                Refusal(502, "bad_gateway", "the coordinator's collections API did not answer"),
            )
            return
        try:
            await _relay(http, response, writer)
        finally:
            await response.aclose()

    def _authorize(self, token: str) -> Refusal | None:
        if token in self._tokens:
            return None
        # Job code trying tokens, or a job still calling after its run ended.
        log.info("collections gateway: refused a request without the token of a live run")
        return Refusal(
            401, "unauthorized", "a collections request needs the run's collections_token"
        )


async def _next(http: h11.Connection, reader: asyncio.StreamReader) -> object:
    """h11's next event, reading from the job as it needs (``b""`` tells it the job closed)."""
    while True:
        event = http.next_event()
        if event is not h11.NEED_DATA:
            return event
        http.receive_data(await reader.read(_CHUNK))


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _body(http: h11.Connection, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The job's request body as h11 unframes it (by its length, or its chunks)."""
    while True:
        async with asyncio.timeout(_READ_TIMEOUT):
            event = await _next(http, reader)
        if isinstance(event, h11.Data):
            yield bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return
        else:
            raise ConnectionError("the job closed the connection in the middle of its body")


async def _relay(
    http: h11.Connection, response: httpx2.Response, writer: asyncio.StreamWriter
) -> None:
    """The coordinator's answer, its body passed on as it comes (h11 frames it)."""
    headers = [("Connection", "close")]
    content_type = response.headers.get("content-type")
    if content_type:
        headers.append(("Content-Type", content_type))
    _send(http, writer, h11.Response(status_code=response.status_code, headers=headers))
    if response.status_code != 204:  # h11 refuses a body there
        async for chunk in response.aiter_bytes():
            if chunk:
                _send(http, writer, h11.Data(data=chunk))
                await writer.drain()
    _send(http, writer, h11.EndOfMessage())
    await writer.drain()


async def _answer(http: h11.Connection, writer: asyncio.StreamWriter, refusal: Refusal) -> None:
    body = refusal.body()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    _send(http, writer, h11.Response(status_code=refusal.status, headers=headers))
    _send(http, writer, h11.Data(data=body))
    _send(http, writer, h11.EndOfMessage())
    await writer.drain()


def _send(http: h11.Connection, writer: asyncio.StreamWriter, event: h11.Event) -> None:
    writer.write(http.send(event) or b"")


def _raw(refusal: Refusal) -> bytes:
    """``refusal`` as a whole answer, for a connection that is not read at all."""
    body = refusal.body()
    head = (
        f"HTTP/1.1 {refusal.status} {refusal.code}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
