"""A minimal Lightning-protocol server, hand-written as a test harness may be: it answers what a
worker needs to run its runs, and nothing more.

It never answers ``phx_leave`` or a heartbeat, and it holds a claim open while it has no run
to give (the answer goes out with the next run it is given). Against such a server a worker
signalled just after a run's ``run:complete`` used to wait 5 s for the answer to the run's
``phx_leave``, then for the answer to its next claim, and was still running 15 s after the
signal (issue 14).

``on_complete`` is called with the run id when a ``run:complete`` arrives, before it is
answered: a test signals the worker there, in the window where it hung.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from fulmen.tokens import mint_run_token

__all__ = ["MinimalLightning"]


@dataclass
class _HeldClaim:
    ws: ServerConnection
    join_ref: str | None
    ref: str


class MinimalLightning:
    """See the module docstring. Use as ``async with MinimalLightning(key) as server``."""

    def __init__(
        self, private_key: RSAPrivateKey, *, on_complete: Callable[[str], None] | None = None
    ) -> None:
        self._private_key = private_key
        self.on_complete = on_complete
        self._server: Server | None = None
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._plans: dict[str, dict[str, Any]] = {}
        self._held: list[_HeldClaim] = []
        self.completed: dict[str, Any] = {}
        self.received: list[tuple[str, str]] = []
        """(topic, event) of every frame, in arrival order."""
        self.port = 0

    async def __aenter__(self) -> MinimalLightning:
        self._server = await serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/worker"

    async def enqueue(self, run_id: str, plan: dict[str, Any]) -> None:
        """Queue a run; a claim held open gets it at once."""
        self._plans[run_id] = plan
        self._queue.append((run_id, plan))
        if self._held:
            held = self._held.pop(0)
            await self._answer_claim(held.ws, held.join_ref, held.ref)

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                join_ref, ref, topic, event, payload = json.loads(raw)
                self.received.append((topic, event))
                await self._on(ws, join_ref, ref, topic, event, payload)
        except ConnectionClosed:
            pass

    async def _on(
        self,
        ws: ServerConnection,
        join_ref: str | None,
        ref: str,
        topic: str,
        event: str,
        payload: Any,
    ) -> None:
        if event in ("phx_leave", "heartbeat"):
            return  # never answered
        if event == "claim":
            if self._queue:
                await self._answer_claim(ws, join_ref, ref)
            else:
                self._held.append(_HeldClaim(ws, join_ref, ref))
            return
        run_id = topic.removeprefix("run:")
        response: Any = None
        if event == "phx_join":
            response = {}
        elif event == "fetch:plan":
            response = {"id": run_id, **self._plans[run_id]}
        elif event in ("step:start", "step:complete"):
            response = {"step_id": payload["step_id"]}
        elif event == "run:log":
            response = {"log_line_id": f"{run_id}-{ref}"}
        elif event == "run:complete":
            self.completed[run_id] = payload
            if self.on_complete is not None:
                self.on_complete(run_id)
        await _reply(ws, join_ref, ref, topic, response)

    async def _answer_claim(self, ws: ServerConnection, join_ref: str | None, ref: str) -> None:
        run_id, _ = self._queue.pop(0)
        token = mint_run_token(self._private_key, run_id, now=time.time(), run_timeout=60)
        await _reply(ws, join_ref, ref, "worker:queue", {"runs": [{"id": run_id, "token": token}]})


async def _reply(
    ws: ServerConnection, join_ref: str | None, ref: str, topic: str, response: Any
) -> None:
    frame = [join_ref, ref, topic, "phx_reply", {"status": "ok", "response": response}]
    with contextlib.suppress(ConnectionClosed):
        await ws.send(json.dumps(frame))
