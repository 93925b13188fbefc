"""The SQLite store's group commit, as its callers see it (store/sqlite.py).

Writes that arrive together share one ``COMMIT``; each caller still gets its answer only once
its change is durable, a transaction that fails leaves the others of its group standing, and a
write lock held by another process is waited for off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fulmen.errors import ConflictError
from fulmen.store import Project, SQLStore, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "fulmen.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SQLStore]:
    async with await open_store(f"sqlite:///{path}") as opened:
        yield opened


def committed_projects(path: Path) -> set[str]:
    """What another process reading the file sees: committed rows only."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM projects")}


async def test_each_write_is_on_disk_when_it_returns(store: SQLStore, path: Path) -> None:
    async def create(i: int) -> set[str]:
        await store.create_project(Project(id=f"p{i}", name=f"P{i}"))
        return committed_projects(path)

    seen = await asyncio.gather(*(create(i) for i in range(40)))

    for i, committed in enumerate(seen):
        assert f"p{i}" in committed
    assert committed_projects(path) == {f"p{i}" for i in range(40)}


async def test_a_failed_transaction_takes_only_itself_back(store: SQLStore, path: Path) -> None:
    await store.create_project(Project(id="taken", name="First"))

    results = await asyncio.gather(
        store.create_project(Project(id="a", name="A")),
        store.create_project(Project(id="taken", name="Again")),
        store.create_project(Project(id="b", name="B")),
        return_exceptions=True,
    )

    assert isinstance(results[1], ConflictError)
    assert committed_projects(path) == {"taken", "a", "b"}
    assert (await store.get_project("taken")).name == "First"


async def test_another_process_holding_the_lock_does_not_stall_the_loop(
    store: SQLStore, path: Path
) -> None:
    await store.create_project(Project(id="old", name="Old"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the file's write lock, as another coordinator takes it
    try:
        loop = asyncio.get_running_loop()
        write = asyncio.create_task(store.create_project(Project(id="new", name="New")))
        # The write starts before this answer from a thread can be heard; a loop stalled in
        # SQLite's busy wait (10 s) would hear it only once the write gave up.
        asked = loop.time()
        assert await asyncio.to_thread(committed_projects, path) == {"old"}
        assert loop.time() - asked < 1.0
        assert (await store.get_project("old")).name == "Old"
        assert not write.done()
    finally:
        other.execute("COMMIT")
        other.close()
    async with asyncio.timeout(10):
        await write
    assert committed_projects(path) == {"old", "new"}
