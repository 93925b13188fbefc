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
is not a live run's (401 ``unauthorized``), a body without a length (411
``length_required``), a path that could climb out of ``/collections`` (400 ``bad_path``).
One request per connection, closed after the answer.

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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

import httpx2

from fulmen.listen import bind

__all__ = [
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
_METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE"})
_HEAD_LIMIT: Final = 16 * 1024
_READ_TIMEOUT: Final = 30.0
#: Headers passed on to the coordinator; nothing else of the job's request goes (cookies,
#: a forged ``X-Forwarded-For``).
_PASSED: Final = ("content-type", "accept")
_REASONS: Final = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    502: "Bad Gateway",
}


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
        try:
            try:
                async with asyncio.timeout(_READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > _HEAD_LIMIT:
                await _refuse(writer, Refusal(400, "bad_request", "request head too large"))
                return
            await self._serve(head, reader, writer)
        except (ConnectionError, OSError):
            pass  # the job went away
        except httpx2.HTTPError as exc:
            # The coordinator's answer broke off: the job sees its answer end unfinished.
            log.warning("collections gateway: the coordinator's answer broke off: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            method, target, headers = _parse_head(head)
        except ValueError:
            await _refuse(writer, Refusal(400, "bad_request", "not an HTTP/1.1 request"))
            return
        rest, refusal = route(method, target)
        if refusal is None:
            refusal = self._authorize(headers)
        if refusal is None and "transfer-encoding" in headers:
            refusal = Refusal(411, "length_required", "send the body with a Content-Length")
        length = headers.get("content-length", "0")
        if refusal is None and not length.isdigit():
            refusal = Refusal(400, "bad_request", "Content-Length is not a number")
        if refusal is not None:
            await _refuse(writer, refusal)
            return
        run_token = self._tokens[_bearer(headers)]
        passed = {k: v for k, v in headers.items() if k in _PASSED}
        passed["authorization"] = f"Bearer {run_token}"
        size = int(length)
        assert self._client is not None
        request = self._client.build_request(
            method,
            self.upstream() + rest,
            headers={**passed, **({"content-length": length} if size else {})},
            content=_body(reader, size) if size else None,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx2.HTTPError as exc:
            log.warning("collections gateway: the coordinator did not answer: %s", exc)
            await _refuse(
                writer,
                Refusal(502, "bad_gateway", "the coordinator's collections API did not answer"),
            )
            return
        try:
            await _relay(response, writer)
        finally:
            await response.aclose()

    def _authorize(self, headers: dict[str, str]) -> Refusal | None:
        if _bearer(headers) in self._tokens:
            return None
        # Job code trying tokens, or a job still calling after its run ended.
        log.info("collections gateway: refused a request without the token of a live run")
        return Refusal(
            401, "unauthorized", "a collections request needs the run's collections_token"
        )


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(version)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(line)
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _bearer(headers: dict[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _body(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    left = size
    while left:
        async with asyncio.timeout(_READ_TIMEOUT):
            chunk = await reader.read(min(left, 1 << 16))
        if not chunk:
            raise ConnectionError("the job closed the connection in the middle of its body")
        left -= len(chunk)
        yield chunk


async def _relay(response: httpx2.Response, writer: asyncio.StreamWriter) -> None:
    """The coordinator's answer, its body chunked as it comes."""
    status = response.status_code
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, response.reason_phrase)}"]
    content_type = response.headers.get("content-type")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if status == 204 or status < 200:  # no body, and no framing for one
        writer.write("\r\n".join([*lines, "Connection: close", "", ""]).encode("latin-1"))
        await writer.drain()
        return
    lines += ["Transfer-Encoding: chunked", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1"))
    async for chunk in response.aiter_bytes():
        if chunk:
            writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _refuse(writer: asyncio.StreamWriter, refusal: Refusal) -> None:
    body = refusal.body()
    reason = _REASONS.get(refusal.status, "Error")
    writer.write(
        (
            f"HTTP/1.1 {refusal.status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
