"""End to end, real processes on loopback (issue 15): Python and JavaScript workflows posted
together to ``fulmen server``, with a ``fulmen worker`` that runs Python only
(``WORKER_LANGUAGES=python``) beside one that runs both; every run ends ``success`` on a
worker that can run it, and a run that no connected worker can run waits, saying why.

The coordinator resolves adaptors against a registry served on loopback (the npm registry is
the outside world); the JavaScript worker's packages were installed once for the session
into its repository (``WORKER_REPO_DIR``), as a worker installs them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fulmen.execution import JavaScript
from fulmen_testing.e2e import Api, WorkerProcess, system, until
from fulmen_testing.javascript import COMMON
from fulmen_testing.npm_registry import npm_registry

pytestmark = pytest.mark.anyio

PY_JOBS = {"double": "fn(lambda s: {**s, 'data': {'n': s['data']['n'] * 2}})\n"}
JS_JOBS = {"triple": "fn(state => ({ ...state, data: { n: state.data.n * 3 } }))\n"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def workers_of(api: Api, run_ids: list[str]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(api.finished(run_id, timeout=60) for run_id in run_ids)))


async def test_runs_go_to_workers_that_run_their_language_and_wait_for_one_otherwise(
    tmp_path: Path, javascript: JavaScript
) -> None:
    with npm_registry() as registry:
        async with system(
            tmp_path,
            capacity=2,
            coordinator={"FULMEN_NPM_REGISTRY": registry.url},
            worker={"WORKER_LANGUAGES": "python", "WORKER_NAME": "python-only"},
        ) as (server, _, api):
            _, py_hook = await api.workflow(PY_JOBS, [], name="py")
            _, js_hook = await api.workflow(JS_JOBS, [], name="js", adaptor=COMMON)

            # Only the Python worker is connected: the JavaScript run waits, and says why.
            waiting = await api.hook(js_hook, {"n": 1})
            run = await until(
                lambda: api.run(waiting),
                lambda run: run["waiting_for"] is not None,
                what="the run to say what it waits for",
            )
            assert (run["state"], run["languages"]) == ("available", ["javascript"])
            assert run["waiting_for"] == "a worker that runs JavaScript"

            both = await WorkerProcess.start(
                server,
                capacity=2,
                settings={
                    "WORKER_NAME": "both",
                    "WORKER_REPO_DIR": str(javascript.repo.root),
                },
            )
            try:
                posted = await asyncio.gather(
                    *(api.hook(py_hook, {"n": i}) for i in range(4)),
                    *(api.hook(js_hook, {"n": i}) for i in range(4)),
                )
                py_ids, js_ids = list(posted[:4]), [waiting, *posted[4:]]
                py_runs = await workers_of(api, py_ids)
                js_runs = await workers_of(api, js_ids)
            finally:
                await both.kill()

            assert {r["state"] for r in py_runs + js_runs} == {"success"}, py_runs + js_runs
            assert {r["worker_name"] for r in js_runs} == {"both"}  # never the Python-only one
            assert {r["worker_name"] for r in py_runs} <= {"python-only", "both"}
            assert all(r["waiting_for"] is None for r in js_runs)
            assert [await final(api, r) for r in js_runs] == [{"n": n} for n in (3, 0, 3, 6, 9)]
            assert [await final(api, r) for r in py_runs] == [{"n": n} for n in (0, 2, 4, 6)]


async def final(api: Api, run: dict[str, Any]) -> Any:
    return (await api.dataclip(run["final_dataclip_id"]))["data"]
