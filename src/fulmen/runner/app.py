"""Composition root: settings in, a running runner out (STYLE.md P13). No logic here.

:func:`build_app` wires a :class:`~fulmen.runner.service.Runner` into the Starlette app of
``api.py``; the runner opens in the app's lifespan and closes with it. :func:`serve` runs it
under uvicorn on a socket it binds itself, so the caller learns the real address (``--listen
127.0.0.1:0`` picks a free port) and a test can wait for the "listening" line instead of
sleeping. The API's token (``auth.py``) is settled before anything else starts: a
``--no-auth`` on a public address, or an unreadable token file, stops start-up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fulmen.clock import Clock
from fulmen.config import RunnerSettings
from fulmen.listen import bind
from fulmen.runner.api import routes
from fulmen.runner.auth import ApiAuth
from fulmen.runner.service import Runner
from fulmen.sandbox import libc

__all__ = ["bind", "build_app", "serve"]

log = logging.getLogger(__name__)

OnReady = Callable[[Runner], None]


def build_app(
    settings: RunnerSettings,
    *,
    clock: Clock | None = None,
    on_ready: OnReady | None = None,
    runner: Runner | None = None,
    auth: ApiAuth | None = None,
) -> Starlette:
    """The runner as an ASGI app; ``on_ready`` is called once the runner has opened.

    The runner opens in the app's lifespan unless one already open is given (``serve``
    opens it first, so that a bad setting stops start-up before any request is taken); so
    does the API's token, read (or made) here unless given.

    Raises:
        ConfigError: the API token cannot be had (``ApiAuth.from_settings``).
    """
    api_auth = auth or ApiAuth.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened = runner or await Runner.open(settings, clock=clock)
        app.state.runner = opened
        app.state.auth = api_auth
        if on_ready is not None:
            on_ready(opened)
        try:
            yield
        finally:
            await opened.close()

    return Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )


async def serve(
    settings: RunnerSettings,
    *,
    announce: Callable[[str, str, str], None] | None = None,
    clock: Clock | None = None,
) -> None:
    """Run until SIGINT/SIGTERM; ``announce`` gets the base URL, the sandbox's one-line
    summary and the API's (where its token is, or that there is none) once requests are
    served.

    Raises:
        ConfigError: the address cannot be bound, the API token cannot be had, or the
            runner's settings are unusable.
        SandboxError: the sandbox did not start, or gives less than the isolation asked for.
    """
    # Same-uid processes (a worker that escaped its sandbox included) must not read this
    # process's memory, where the master key lives (spec runner.md §3.7).
    libc.prctl(libc.PR_SET_DUMPABLE, 0)
    auth = ApiAuth.from_settings(settings)
    sock = bind(settings.host, settings.port, flag="--listen (FULMEN_RUNNER_LISTEN)")
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def ready(runner: Runner) -> None:
        log.info("runner listening on %s (sandbox %s)", url, runner.isolation)
        if announce is not None:
            announce(url, runner.sandbox.summary(), auth.describe())

    try:
        runner = await Runner.open(settings, clock=clock)
    except BaseException:
        sock.close()
        raise
    app = build_app(settings, clock=clock, on_ready=ready, runner=runner, auth=auth)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    try:
        await _Server(config).serve(sockets=[sock])
    finally:
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn, but SIGINT/SIGTERM end the process normally (exit 0) once it has shut down;
    uvicorn itself re-raises the signal after a graceful exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body: dict[str, Any] = {"error": exc.detail, "code": code}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
