"""A scripted Lightning for worker tests: a real WebSocket server on loopback, speaking Phoenix
through ``fulmen.phoenix.server.ServerSession``, with Lightning's rules where they matter.

* The upgrade needs a worker token signed with the shared secret, else HTTP 401 (§1.7, newest
  Lightning).
* ``worker:queue``: joins are accepted, answered ``{}`` as Lightning does, or with
  ``accepts`` as a Fulmen coordinator does; ``claim`` hands out at most ``demand`` queued runs,
  each with a run token minted by ``fulmen.tokens`` (or the run's own, to test bad ones).
* ``run:<id>``: the join verifies the run token as Lightning does (§3.3); the fetches serve the
  run's plan, dataclip (as a binary frame, §5.5) and credentials; every lifecycle event is
  decoded with ``fulmen.contract`` (Lightning's validation) and answered as Lightning does.

Everything a worker sends is recorded, in arrival order, as :class:`Recorded` values; tests
await conditions on that record (:meth:`Lightning.wait_for`) instead of sleeping. A one-shot
``drop_when`` predicate makes the server cut the TCP connection on a matching event *before*
recording or answering it: the frame was lost in transit, and the worker must send it again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from fulmen.contract import (
    ClaimedRun,
    ClaimReply,
    ClaimRequest,
    ErrorReply,
    QueueJoined,
    decode_run_request,
)
from fulmen.errors import ContractError, TokenError
from fulmen.phoenix.frames import JSON, ReplyStatus
from fulmen.phoenix.server import JoinRequest, Left, Request, ServerEvent, ServerSession
from fulmen.tokens import mint_run_token, verify_run_token, verify_worker_token

__all__ = ["Lightning", "Recorded", "ScriptedRun"]


@dataclass
class ScriptedRun:
    """A run waiting to be claimed. ``credentials`` maps an id to its body; an id the plan
    names but this map lacks is "not found". ``token`` replaces the minted run token."""

    id: str
    plan: dict[str, Any]
    dataclip: bytes | None = b'{"data": {}}'
    credentials: dict[str, dict[str, Any]] = field(default_factory=dict)
    token: str | None = None


@dataclass(frozen=True)
class Recorded:
    """One thing a worker sent: ``event`` is the Phoenix or Lightning event name; ``at`` is
    when it arrived (``time.monotonic()``)."""

    conn: int
    topic: str
    event: str
    payload: Any
    at: float = field(default_factory=time.monotonic, compare=False)


class Lightning:
    """See the module docstring. Use as ``async with Lightning(...) as server``."""

    def __init__(
        self,
        *,
        secret: str,
        private_key: RSAPrivateKey,
        host: str = "127.0.0.1",
        run_timeout: float = 60.0,
        check_token_at: str = "connect",
        accepts: frozenset[str] = frozenset(),
    ) -> None:
        self._secret = secret
        self._joined = QueueJoined(accepts).to_wire()
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self._host = host
        self._run_timeout = run_timeout
        self._check_token_at = check_token_at  # "join": as older Lightning did (§1.7)
        self._verified: set[int] = set()
        self._server: Server | None = None
        self._conns = itertools.count(1)
        self._queue_sessions: dict[int, tuple[ServerSession, ServerConnection]] = {}
        self._changed = asyncio.Condition()
        self.available: deque[ScriptedRun] = deque()
        self.runs: dict[str, ScriptedRun] = {}
        self.events: list[Recorded] = []
        self.refused_upgrades = 0
        self.refused_joins = 0
        self.handed_out: list[str] = []
        self.claims: list[tuple[int, int]] = []
        self.completions: dict[str, Recorded] = {}
        """The (last) run:complete of each run, by run id."""
        self._left: set[str] = set()
        """Each claim's demand, with the runs the worker still held when it arrived."""
        self.drop_when: Callable[[Recorded], bool] | None = None
        self.drops = 0
        self.port = 0

    async def __aenter__(self) -> Lightning:
        self._server = await serve(
            self._handle, self._host, 0, process_request=self._authorize, ping_interval=None
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{self.port}/worker"

    # -- scripting -------------------------------------------------------------------------

    def enqueue(self, run: ScriptedRun, *, wakeup: bool = True) -> None:
        """Queue ``run``; with ``wakeup``, push ``work-available`` to every joined worker."""
        self.available.append(run)
        self.runs[run.id] = run
        if wakeup:
            for session, ws in list(self._queue_sessions.values()):
                session.push("worker:queue", "work-available", {})
                asyncio.get_running_loop().create_task(_flush(session, ws))

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait until ``condition()`` holds, re-checked after every recorded event."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)

    async def completed(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The ``run:complete`` payload of ``run_id``, once it has arrived."""
        await self.wait_for(lambda: self.complete_of(run_id) is not None, timeout)
        payload = self.complete_of(run_id)
        assert payload is not None
        return payload

    def complete_of(self, run_id: str) -> dict[str, Any] | None:
        found = self.completions.get(run_id)
        return None if found is None else dict(found.payload)

    def of_run(self, run_id: str) -> list[Recorded]:
        return [e for e in self.events if e.topic == f"run:{run_id}"]

    def named(self, event: str, topic: str | None = None) -> list[Recorded]:
        return [e for e in self.events if e.event == event and topic in (None, e.topic)]

    # -- the socket ------------------------------------------------------------------------

    def _authorize(self, conn: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        url = urlsplit(request.path)
        token = parse_qs(url.query).get("token", [""])[0]
        try:
            if url.path != "/worker/websocket":
                raise TokenError("wrong path", code="malformed")
            verify_worker_token(token, self._secret, now=time.time())
        except TokenError:
            if self._check_token_at == "join":
                return None  # older Lightning: any token connects, the join decides
            self.refused_upgrades += 1
            asyncio.get_running_loop().create_task(self._record(None))
            return conn.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        self._verified.add(id(conn))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = next(self._conns)
        session = ServerSession(now=time.monotonic())
        try:
            async for message in ws:
                if isinstance(message, str):
                    events = session.receive_text(message, now=time.monotonic())
                else:
                    events = session.receive_binary(message, now=time.monotonic())
                for event in events:
                    if not await self._on(conn, session, ws, event):
                        ws.transport.abort()  # lost in transit: no close frame, no reply
                        return
                await _flush(session, ws)
        except ConnectionClosed:
            pass
        finally:
            self._queue_sessions.pop(conn, None)
            self._verified.discard(id(ws))

    async def _on(
        self, conn: int, session: ServerSession, ws: ServerConnection, event: ServerEvent
    ) -> bool:
        """Handle one event; false means: drop the connection now."""
        if isinstance(event, JoinRequest):
            recorded = Recorded(conn, event.topic, "phx_join", event.payload)
        elif isinstance(event, Request):
            recorded = Recorded(conn, event.topic, event.event, event.payload)
        elif isinstance(event, Left):
            recorded = Recorded(conn, event.topic, "phx_leave", {})
        else:
            return True
        if self.drop_when is not None and self.drop_when(recorded):
            self.drop_when = None
            self.drops += 1
            return False
        await self._record(recorded)
        if isinstance(event, JoinRequest) and id(ws) not in self._verified:
            self.refused_joins += 1
            session.refuse(event, {"reason": "unauthorized"})
        elif isinstance(event, JoinRequest):
            self._join(conn, session, ws, event)
        elif isinstance(event, Request):
            status, response = self._answer(event)
            session.reply(event, status, response)
        return True

    async def _record(self, recorded: Recorded | None) -> None:
        """Record what a worker sent (``None``: only wake the waiters)."""
        async with self._changed:
            if recorded is not None:
                self.events.append(recorded)
                if recorded.event == "phx_leave":
                    self._left.add(recorded.topic)
                elif recorded.event == "run:complete":
                    self.completions[recorded.topic.removeprefix("run:")] = recorded
            self._changed.notify_all()

    # -- Lightning's answers ---------------------------------------------------------------

    def _join(
        self, conn: int, session: ServerSession, ws: ServerConnection, join: JoinRequest
    ) -> None:
        if join.topic == "worker:queue":
            session.accept(join, self._joined)
            self._queue_sessions[conn] = (session, ws)
            return
        run_id = join.topic.removeprefix("run:")
        token = join.payload.get("token") if isinstance(join.payload, dict) else None
        try:
            verify_run_token(
                token, self._public_key, run_id=run_id, now=time.time(), require_sub=True
            )
        except TokenError:
            session.refuse(join, {"reason": "unauthorized"})
            return
        if run_id not in self.runs:
            session.refuse(join, {"reason": "not_found"})
            return
        session.accept(join)

    def _answer(self, request: Request) -> tuple[ReplyStatus, JSON | bytes]:
        if request.topic == "worker:queue":
            return self._claim(request.payload)
        run = self.runs[request.topic.removeprefix("run:")]
        if request.event == "fetch:plan":
            return ReplyStatus.OK, {"id": run.id, **run.plan}
        if request.event == "fetch:dataclip":
            if run.dataclip is None:
                return ReplyStatus.ERROR, "not_found"
            return ReplyStatus.OK, run.dataclip
        if request.event == "fetch:credential":
            wanted = request.payload.get("id") if isinstance(request.payload, dict) else None
            body = run.credentials.get(str(wanted))
            if body is None:
                return ReplyStatus.ERROR, {"errors": {"id": ["Credential not found!"]}}
            return ReplyStatus.OK, body
        try:
            decode_run_request(request.event, _json(request.payload))
        except ContractError as exc:
            return ReplyStatus.ERROR, ErrorReply.from_error(exc).to_wire()
        return ReplyStatus.OK, _LIFECYCLE_REPLIES.get(request.event, _ok_null)(request.payload)

    def held(self) -> int:
        """Runs handed out whose channel has not been left yet."""
        return sum(1 for run_id in self.handed_out if f"run:{run_id}" not in self._left)

    def _claim(self, payload: JSON | bytes) -> tuple[ReplyStatus, JSON]:
        claim = ClaimRequest.from_wire(_json(payload))
        self.claims.append((claim.demand, self.held()))
        runs: list[ClaimedRun] = []
        while self.available and len(runs) < claim.demand:
            run = self.available.popleft()
            token = run.token or mint_run_token(
                self._private_key, run.id, now=time.time(), run_timeout=self._run_timeout
            )
            runs.append(ClaimedRun(run.id, token))
            self.handed_out.append(run.id)
        return ReplyStatus.OK, ClaimReply(tuple(runs)).to_wire()


def _json(payload: JSON | bytes) -> JSON:
    assert not isinstance(payload, bytes)
    return payload


def _ok_null(payload: JSON | bytes) -> JSON:
    return None


def _step_reply(payload: JSON | bytes) -> JSON:
    assert isinstance(payload, dict)
    return {"step_id": payload["step_id"]}


_LIFECYCLE_REPLIES: dict[str, Callable[[JSON | bytes], JSON]] = {
    "step:start": _step_reply,
    "step:complete": _step_reply,
    "run:log": lambda payload: {"log_line_id": str(uuid.uuid4())},
    "run:batch_logs": lambda payload: {},
}


async def _flush(session: ServerSession, ws: ServerConnection) -> None:
    try:
        for frame in session.data_to_send():
            await ws.send(frame)
    except ConnectionClosed:
        pass
