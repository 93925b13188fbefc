"""The smart worker's process: load the script, then serve the runner's requests until told to stop.

``serve`` is the sandbox entry of a duplex run (``Zygote.run(..., duplex=True)``), so the
process is already hardened when it starts: own session, scrubbed environment, rlimits,
Landlock, no capabilities. The payload holds what is not secret: the script, its type, the
worker's id, name and public args. The config is not in it: it comes only when the script
asks (``rnr.get_config()``).

*Why one long-lived process per worker* rather than a fresh sandbox child per trigger: the
spec's handlers share a process as Workers isolates do (``init`` once per start, module state
kept between calls, HTTP invocations concurrent), a fetch costs a frame round trip instead of
a fork and a script load, and a crash is a thing the runner can see, count and back off from
(spec runner.md §3.5). The channel is the sandbox's run socket, so the runner still talks to
the child directly and the zygote never sees a request.

Threads: the main thread runs an asyncio loop with every handler; one reader thread blocks in
``receive()`` and hands each message to the loop. Sync handlers run on the loop thread: a
handler stuck in sync code is ended by the runner's timeout, which kills and restarts the
process (the only reliable way to stop sync code).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import linecache
import logging
import sys
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any, Final

from fulmen.runner import sdk
from fulmen.runner.protocol import HANDLER_NAMES, MAX_BODY_BYTES, Kind, Op, b64decode, b64encode

__all__ = ["load_script", "serve"]

Emit = Callable[[dict[str, Any]], None]
Receive = Callable[[], dict[str, Any] | None]
Handler = Callable[..., Any]

_MAX_LINE: Final = 16 * 1024
_MODULE: Final = "smartworker_main"


def serve(payload: dict[str, Any], emit: Emit, receive: Receive) -> None:
    """Sandbox entry: run the worker until the runner closes its input."""
    host = _Host(payload, emit)
    sys.stdout = _LineStream(emit, "stdout")
    sys.stderr = _LineStream(emit, "stderr")
    try:
        asyncio.run(host.main(receive))
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()


def load_script(source: str, kind: str, worker_id: str) -> dict[Kind, Handler]:
    """Compile and run ``source`` as a fresh module; return its handlers by kind.

    ``module`` scripts are searched by name (``tasks``, ``fetch``, ``on_event``, ``init``);
    ``classic`` ones register with ``register(kind, fn)`` (alias ``add_event_listener``).
    Raises whatever the script raises.
    """
    filename = f"<worker:{worker_id}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    code = compile(source, filename, "exec")
    module = types.ModuleType(_MODULE)
    registered: dict[Kind, Handler] = {}
    if kind == "classic":

        def register(kind_name: str, function: Handler) -> None:
            if kind_name not in set(Kind):
                raise ValueError(f"unknown handler kind {kind_name!r}; one of {sorted(Kind)}")
            if not callable(function):
                raise TypeError("register() needs a function")
            registered[Kind(kind_name)] = function

        module.__dict__["register"] = module.__dict__["add_event_listener"] = register
    sys.modules[_MODULE] = module
    exec(code, module.__dict__)
    if kind == "classic":
        return registered
    found = {k: getattr(module, name, None) for k, name in HANDLER_NAMES.items()}
    return {k: f for k, f in found.items() if callable(f)}


class _Host:
    def __init__(self, payload: dict[str, Any], emit: Emit) -> None:
        self._emit = emit
        self._payload = payload
        self._handlers: dict[Kind, Handler] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._invocations: dict[object, asyncio.Task[None]] = {}
        self._next_id = 0
        self._stop = asyncio.Event()
        self._log = _worker_logger(emit)
        sys.modules["smartworker"] = sdk

    async def main(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop, receive), daemon=True).start()
        try:
            p = self._payload
            self._handlers = load_script(p["script"], p["type"], p["worker_id"])
            init = self._handlers.get(Kind.INIT)
            if init is not None:
                await _call(init, self._runner({"kind": "init"}))
        except Exception as exc:
            traceback.print_exc()
            self._emit({"op": Op.READY, "ok": False, "error": _describe(exc)})
            return
        self._emit({"op": Op.READY, "ok": True, "handlers": sorted(self._handlers)})
        await self._stop.wait()
        for task in list(self._tasks):
            task.cancel()

    def _read(self, loop: asyncio.AbstractEventLoop, receive: Receive) -> None:
        """The reader thread: every message goes to the loop; end of input stops it."""
        try:
            while (message := receive()) is not None:
                loop.call_soon_threadsafe(self._on_message, message)
        except Exception:
            pass  # a broken channel ends the worker like a closed one
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            loop.call_soon_threadsafe(self._stop.set)

    def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("op") == Op.INVOKE:
            task = asyncio.get_running_loop().create_task(self._invoke(message))
            self._tasks.add(task)
            self._invocations[message.get("id")] = task
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: self._invocations.pop(message.get("id"), None))
            return
        if message.get("op") == Op.CANCEL:
            running = self._invocations.get(message.get("invocation"))
            if running is not None:
                running.cancel()
            return
        future = self._pending.pop(message.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(message)

    async def _invoke(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            result = await self._dispatch(message)
        except asyncio.CancelledError:
            if self._stop.is_set():
                raise  # the worker is stopping: nobody waits for a reply
            self._log.warning("%s handler cancelled: it ran out of time", message.get("kind"))
            error = {"code": "cancelled", "type": "CancelledError", "message": "timed out"}
            reply = {"id": request_id, "ok": False, "error": error}
        except Exception as exc:
            self._log.error("%s handler raised:\n%s", message.get("kind"), traceback.format_exc())
            reply = {"id": request_id, "ok": False, "error": _describe(exc)}
        else:
            reply = {"id": request_id, "ok": True, "result": result}
        self._emit(reply)

    async def _dispatch(self, message: dict[str, Any]) -> Any:
        kind = Kind(message["kind"])
        handler = self._handlers.get(kind)
        if handler is None:
            raise LookupError(f"the script has no {kind} handler")
        rnr = self._runner(message.get("trigger") or {"kind": kind})
        if kind == Kind.FETCH:
            return _response(await _call(handler, _request(message["request"]), rnr))
        if kind == Kind.EVENT:
            await _call(handler, message["event"], rnr)
        else:
            await _call(handler, rnr)
        return None

    def _runner(self, trigger: dict[str, Any]) -> sdk.Runner:
        p = self._payload
        return sdk.Runner(
            self._request_runner,
            worker_id=p["worker_id"],
            name=p.get("name"),
            args=p.get("args") or {},
            trigger=trigger,
            log=self._log,
        )

    async def _request_runner(self, op: Op, args: dict[str, Any]) -> Any:
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._emit({"id": request_id, "op": op, "args": args})
        reply = await future
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        message, code = str(error.get("message", "binding failed")), str(error.get("code", ""))
        raise (sdk.KeyDenied if code == "key_denied" else sdk.BindingError)(message, code)


async def _call(handler: Handler, *args: Any) -> Any:
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _request(data: dict[str, Any]) -> sdk.Request:
    return sdk.Request(
        method=data["method"],
        url=data["url"],
        path=data["path"],
        query={k: list(v) for k, v in data["query"].items()},
        headers=dict(data["headers"]),
        body=b64decode(data["body"]),
    )


def _response(result: Any) -> dict[str, Any]:
    """A handler's return value as the reply to a fetch: status, headers, base64 body."""
    if isinstance(result, sdk.Response):
        body, status, headers = result.body, result.status, dict(result.headers)
    elif isinstance(result, dict | list):
        body, status = sdk.Response.json(result).body, 200
        headers = {"content-type": "application/json"}
    elif isinstance(result, str | bytes):
        body, status, headers = result, 200, {}
    elif result is None:
        body, status, headers = b"", 204, {}
    else:
        raise TypeError(f"fetch returned a {type(result).__name__}; return a Response")
    if isinstance(body, str):
        body = body.encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"response body of {len(body)} bytes is over {MAX_BODY_BYTES}")
    return {"status": int(status), "headers": headers, "body": b64encode(body)}


def _describe(exc: BaseException) -> dict[str, str]:
    return {"code": "handler_raised", "type": type(exc).__qualname__, "message": str(exc)[:2000]}


def _worker_logger(emit: Emit) -> logging.Logger:
    logger = logging.getLogger("smartworker")
    logger.handlers[:] = [_ChannelHandler(emit)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class _ChannelHandler(logging.Handler):
    """``rnr.log`` records go to the runner's log of this worker."""

    def __init__(self, emit: Emit) -> None:
        super().__init__()
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)[:_MAX_LINE]
            self._emit({"op": Op.LOG, "stream": "log", "level": record.levelname, "line": line})
        except Exception:
            self.handleError(record)


class _LineStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: each complete line becomes one ``log`` notice."""

    def __init__(self, emit: Emit, stream: str) -> None:
        self._emit = emit
        self._stream = stream
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._partial = self._partial, ""
        if line:
            self._send(line)

    def _send(self, line: str) -> None:
        self._emit({"op": Op.LOG, "stream": self._stream, "line": line[:_MAX_LINE]})
