"""A workflow whose concurrency limit is 1, and real Fulmen workers racing for its runs
(issue 8), on SQLite (two workers on one coordinator) and PostgreSQL (two coordinators on one
database, a worker on each): never two of its runs in flight, and they run in the order they
came, while another workflow's runs are not held up."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from itertools import pairwise
from pathlib import Path

import pytest

from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import Run, RunFilter, SQLStore, open_store
from fulmen_testing.coordinator import CREDENTIAL_KEY, seed
from fulmen_testing.operator import BACKENDS, Site, fulmen_worker, site, store_at, until

pytestmark = pytest.mark.anyio

NAP = "fn(lambda s: (__import__('time').sleep(0.3), s)[1])"
RUNS = 6


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def second_store(backend: str, url: str, store: SQLStore) -> AsyncIterator[SQLStore]:
    """PostgreSQL: another store (another coordinator's) on the same database; SQLite has
    one coordinator per file, so both workers use the one."""
    if backend == "sqlite":
        yield store
        return
    async with await open_store(url, credential_key=CREDENTIAL_KEY) as other:
        yield other


async def runs_of(store: SQLStore, workflow_id: str) -> list[Run]:
    return list((await store.list_runs(RunFilter(workflow_id=workflow_id), limit=100)).items)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_workers_racing_for_a_workflow_limited_to_one(
    backend: str, tmp_path: Path
) -> None:
    async with store_at(backend, tmp_path) as (store, url):
        limited = await seed(store, jobs=(("nap", NAP),))
        free = await seed(store, jobs=(("nap", NAP),))
        stored = await store.get_workflow(limited.workflow_id)
        await store.replace_workflow(dataclasses.replace(stored.workflow, concurrency=1))
        async with AsyncExitStack() as stack:
            other = await stack.enter_async_context(second_store(backend, url, store))
            sites: list[Site] = [
                await stack.enter_async_context(site(store)),
                await stack.enter_async_context(site(other)),
            ]
            for number, where in enumerate(sites):
                await stack.enter_async_context(
                    fulmen_worker(where.served, capacity=2, worker_name=f"worker-{number}")
                )
            made = []
            for i in range(RUNS):
                where = sites[i % 2]
                for seeded in (limited, free):
                    answer = await where.http.post(f"/i/{seeded.webhook_id}", json={"i": i})
                    assert answer.status_code == 200
                    if seeded is limited:
                        made.append(answer.json()["run_id"])
            await until(
                lambda: runs_of(store, limited.workflow_id),
                lambda runs: all(run.state in FINAL_RUN_STATES for run in runs),
                timeout=60,
                what="every run of the limited workflow ended",
            )
            await until(
                lambda: runs_of(store, free.workflow_id),
                lambda runs: all(run.state in FINAL_RUN_STATES for run in runs),
                timeout=30,
                what="every run of the other workflow ended",
            )
        ran = sorted(await runs_of(store, limited.workflow_id), key=lambda run: run.claimed_at)
        assert all(run.state == "success" for run in ran)
        assert [run.id for run in ran] == made  # one at a time, in the order they came
        for before, after in pairwise(ran):
            assert before.finished_at is not None and after.claimed_at is not None
            assert after.claimed_at >= before.finished_at, "two runs were in flight at once"
        assert {run.worker_name for run in ran} <= {"worker-0", "worker-1"}
        # The other workflow had no limit: some of its runs overlapped.
        others = sorted(await runs_of(store, free.workflow_id), key=lambda run: run.claimed_at)
        assert any(
            b.claimed_at is not None and a.finished_at is not None and b.claimed_at < a.finished_at
            for a, b in pairwise(others)
        )
