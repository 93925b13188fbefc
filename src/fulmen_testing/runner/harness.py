"""An in-process runner served by uvicorn on 127.0.0.1 (an ephemeral port), and one as a
``fulmen runner`` subprocess; both signal readiness, so no test sleeps to wait for them.

Both require the API token, as a runner does by default; ``Served.http`` sends it, and
:func:`bearer` gives the header for a subprocess's state directory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from fulmen.clock import Clock
from fulmen.config import RunnerSettings
from fulmen.listen import bind
from fulmen.runner.app import build_app
from fulmen.runner.auth import TOKEN_FILE, ApiAuth
from fulmen.runner.service import Runner


@dataclasses.dataclass
class Served:
    runner: Runner
    url: str
    http: httpx2.AsyncClient
    """Sends the API token, if there is one."""
    state_dir: Path
    auth: ApiAuth

    async def create(self, script: str, **fields: Any) -> dict[str, Any]:
        """Create a worker from JSON fields; asserts 201."""
        reply = await self.http.post("/workers", json={"script": script, **fields})
        assert reply.status_code == 201, reply.text
        body: dict[str, Any] = reply.json()
        return body


@contextlib.asynccontextmanager
async def served(
    state_dir: Path, *, clock: Clock | None = None, **settings: Any
) -> AsyncIterator[Served]:
    """A runner on a loopback socket; closed (and its workers stopped) on exit."""
    options = RunnerSettings(state_dir=str(state_dir), port=0, **settings)
    opened: asyncio.Future[Runner] = asyncio.get_running_loop().create_future()
    auth = ApiAuth.from_settings(options)
    app = build_app(options, clock=clock, on_ready=opened.set_result, auth=auth)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            runner = await asyncio.shield(opened)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        headers = {"authorization": f"Bearer {auth.token}"} if auth.token else {}
        async with httpx2.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
            yield Served(runner, url, http, state_dir, auth)
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def runner_process(state_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``fulmen runner`` as a subprocess; yields it and its URL once it is serving."""
    command = [sys.executable, "-m", "fulmen", "runner", "--listen", "127.0.0.1:0",
               "--state-dir", str(state_dir), *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on " in line, line + (process.stderr.read() if process.stderr else "")
        yield process, line.rsplit(" ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=20)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def bearer(state_dir: Path) -> dict[str, str]:
    """The header that a runner on ``state_dir`` with its own token (the default) takes."""
    token = (state_dir / TOKEN_FILE).read_text().strip()
    return {"authorization": f"Bearer {token}"}
