"""End to end: a worker started with another WORKER_SECRET than the coordinator's is refused
at the socket. The worker says so plainly (the coordinator's URL and the likely cause, never
the secret) and keeps retrying; the coordinator logs the refusal and stores nothing: a run
waiting in the queue stays there, unclaimed, however often the worker tries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen import keys as keyring
from fulmen_testing.e2e import WorkerProcess, system

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_worker_with_the_wrong_secret_is_refused(tmp_path: Path) -> None:
    wrong = keyring.generate().worker_secret
    async with system(tmp_path, with_worker=False) as (coordinator, _, api):
        workflow_id, hook = await api.workflow({"only": "fn(lambda s: s)\n"}, [])
        run_id = await api.hook(hook, {})
        worker = await WorkerProcess.start(coordinator, secret=wrong, wait=False)
        try:
            refused = rf"the coordinator at {coordinator.socket_url} refused the worker token"
            # twice: the worker retries, and is refused again
            line = await worker.output.wait_for(refused, times=2)
            assert worker.process.returncode is None  # it keeps trying, as ws-worker does
        finally:
            status = await worker.terminate()
        assert status == 0
        said = worker.output.text()
        assert "(HTTP 401): is WORKER_SECRET the same there?" in line.string
        assert "joined worker:queue" not in said
        assert "claimed" not in said

        run = await api.run(run_id)
        assert (run["state"], run["claimed_at"], run["worker_name"]) == ("available", None, None)
        assert [r["state"] for r in await api.runs(workflow_id)] == ["available"]
        assert coordinator.output is not None
        server_said = coordinator.output.text()
        assert server_said.count("refused a worker socket from 127.0.0.1") >= 2
        assert "connected from" not in server_said
        for secret in (wrong, coordinator.keys.worker_secret):
            assert secret not in said and secret not in server_said
