"""One process of one smart worker, as the runner sees it: the pump around its duplex run.

Every frame the worker emits goes through :meth:`WorkerChannel.pump`, the one loop that reads
this process (STYLE.md P1): ``log`` notices go to the logbook, ``ready`` settles
:attr:`ready`, replies settle the :meth:`invoke` they answer, and requests (``get_config``,
``omni_key``...) are answered by the ``serve`` callback, each in its own task, so that a slow
key store never holds up a fetch. The worker is never trusted to say who it is: ``serve`` is
bound to this channel's worker by whoever made the channel.

Every request is answered, whatever it holds: a frame with an ``op`` and an ``id`` waits for
a reply on the worker's side, so a ``ready`` or ``log`` sent that way (notices in the
protocol), or a request whose id is not an integer, gets an error reply and is not acted on;
an op nobody serves gets ``unknown_op`` from ``serve``. Left unanswered, the handler that
sent it would hang until its timeout.

*Error handling*: whatever the process does ends here as a value. When it ends, every
invocation still waiting fails with ``crashed`` (the HTTP layer answers 502) and the
:class:`~fulmen.sandbox.ChildExit` is returned to the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fulmen.errors import RunnerError, SandboxError
from fulmen.runner.protocol import Op
from fulmen.sandbox import ChildExit, RunHandle

__all__ = ["OnLog", "Serve", "WorkerChannel"]

log = logging.getLogger(__name__)

_NOTICES: Final = frozenset({Op.READY, Op.LOG})
"""What the worker sends without an id; the same op with one is refused, not acted on."""

Serve = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Answer one request of this worker (op, args); raise RunnerError to refuse it."""
OnLog = Callable[[str, str], None]
"""One line of the worker's output: (stream, line)."""


class WorkerChannel:
    """The runner's end of one worker process. Run :meth:`pump` as a task.

    *Resource handling*: the process is the sandbox's; :meth:`close` asks it to finish (its
    input ends, the host returns), :meth:`kill` ends it now.
    """

    def __init__(self, handle: RunHandle, serve: Serve, on_log: OnLog) -> None:
        self._handle = handle
        self._serve = serve
        self._on_log = on_log
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._answering: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.kill_reason: str | None = None

    @property
    def pid(self) -> int | None:
        return self._handle.pid

    async def pump(self) -> ChildExit:
        """Read the process until it ends; returns how it ended."""
        async for event in self._handle:
            self._on_event(event)
        result = self._handle.exit
        gone = RunnerError(f"the worker's process ended ({result.message})", code="crashed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        self._pending.clear()
        if not self.ready.done():
            self.ready.set_result({"ok": False, "error": {"message": result.message}})
        for task in list(self._answering):
            task.cancel()
        return result

    async def invoke(
        self, kind: str, body: dict[str, Any], timeout: float, grace: float = 5.0
    ) -> Any:
        """Call a handler in the process and return its result.

        A handler still running after ``timeout`` is cancelled; if it has not answered
        ``grace`` seconds later (sync code, which cancelling cannot stop) the process is
        killed, which is the only way to stop it, and the supervisor restarts it.

        Raises:
            RunnerError: ``handler_raised`` (the message names the exception), ``timeout``,
                ``crashed``.
        """
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._handle.send({"id": request_id, "op": Op.INVOKE, "kind": kind, **body})
        except SandboxError:
            raise RunnerError("the worker is stopping", code="not_ready") from None
        self._pending[request_id] = future
        try:
            async with asyncio.timeout(timeout):
                reply = await asyncio.shield(future)
        except TimeoutError:
            await self._cancel(kind, request_id, future, grace)
            raise RunnerError(f"the {kind} handler timed out", code="timeout") from None
        finally:
            self._pending.pop(request_id, None)
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        message = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        raise RunnerError(message, code="handler_raised")

    async def _cancel(
        self, kind: str, request_id: int, future: asyncio.Future[dict[str, Any]], grace: float
    ) -> None:
        with contextlib.suppress(SandboxError):
            self._handle.send({"op": Op.CANCEL, "invocation": request_id})
        try:
            async with asyncio.timeout(grace):
                await future
        except TimeoutError:
            self.kill(f"{kind} handler did not stop within {grace:g}s of its timeout")
        except RunnerError:
            pass  # the process ended meanwhile

    def close(self) -> None:
        """Ask the process to finish: the host stops when its input ends."""
        self._handle.close_input()

    def kill(self, reason: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        self._handle.kill()

    # -- the pump's dispatch ---------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        op, request_id = event.get("op"), event.get("id")
        if op is not None and request_id is not None:
            self._on_request(request_id, str(op), event.get("args"))
        elif op == Op.LOG:
            self._on_log(str(event.get("stream", "stdout")), str(event.get("line", "")))
        elif op == Op.READY:
            if not self.ready.done():
                self.ready.set_result(event)
        elif isinstance(request_id, int) and request_id in self._pending:
            future = self._pending.pop(request_id)
            if not future.done():
                future.set_result(event)
        else:
            self._on_log("runner", f"ignored a frame the protocol does not have: {sorted(event)}")

    def _on_request(self, request_id: object, op: str, args: object) -> None:
        if op in _NOTICES or not isinstance(request_id, int):
            why = (
                f"{op!r} is a notice: send it without an id"
                if op in _NOTICES
                else "a request's id must be an integer"
            )
            self._on_log("runner", f"refused a request the protocol does not have: {why}")
            error = {"code": "bad_request", "message": why}
            with contextlib.suppress(SandboxError):
                self._handle.send({"id": request_id, "ok": False, "error": error})
            return
        task = asyncio.get_running_loop().create_task(self._answer(request_id, op, args))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, request_id: int, op: str, args: object) -> None:
        try:
            result = await self._serve(op, args if isinstance(args, dict) else {})
            reply: dict[str, Any] = {"id": request_id, "ok": True, "result": result}
        except RunnerError as exc:
            reply = {"id": request_id, "ok": False, "error": exc.to_wire()}
        except Exception:
            log.exception("binding %s failed", op)
            error = {"code": "internal", "message": "internal error"}
            reply = {"id": request_id, "ok": False, "error": error}
        with contextlib.suppress(SandboxError):  # the process is being stopped
            self._handle.send(reply)
