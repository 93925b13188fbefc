"""``fulmen server --log debug`` and ``fulmen worker --log debug`` as processes (issue 13):
a worker connects and runs a run, and neither log shows a token. The coordinator's log has
the line for the worker's connect, which used to print the worker token with the socket's
URL; it still has it, redacted."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from fulmen import keys as keyring
from fulmen_testing.e2e import Api, Coordinator, WorkerProcess

pytestmark = pytest.mark.anyio

#: A JWT, or the start of one: the worker token and the run tokens are JWTs.
JWT = re.compile(r"eyJ[\w-]{8,}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_debug_logs_of_a_real_connect_and_run_hold_no_token(tmp_path: Path) -> None:
    server = Coordinator(tmp_path / "data", keyring.generate(), log="debug")
    await server.start()
    worker: WorkerProcess | None = None
    try:
        worker = await WorkerProcess.start(server, settings={"WORKER_LOG_LEVEL": "debug"})
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=30) as http:
            api = Api(http, await server.api_token())
            _, hook = await api.workflow({"only": "fn(lambda s: s)\n"}, [])
            run = await api.finished(await api.hook(hook, {"n": 1}))
            assert run["state"] == "success"
    finally:
        if worker is not None:
            await worker.terminate()
        await server.stop()
    assert server.output is not None and worker is not None
    for said in (server.output.text(), worker.output.text()):
        assert not JWT.search(said), JWT.search(said)
        assert server.keys.worker_secret not in said
    accepted = r'"WebSocket /worker/websocket\?token=\[redacted\]&\S+" \[accepted\]'
    assert re.search(accepted, server.output.text())
