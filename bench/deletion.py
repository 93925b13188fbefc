"""What deleting a project with a long history costs the coordinator, on SQLite.

SQLite's statements run on the coordinator's event loop (``store/sqlite.py``), and what a
transaction erases stays in SQLite's statement journal until it ends (in memory since
``temp_store = MEMORY``; before, in a temporary file on the disk). This fills a store with
``--runs`` ended runs, each with an input body and a log of ``--kb`` kilobytes, then deletes
the project through the store, as ``DELETE /api/projects/{id}`` does, while a task measures
how long the event loop went without turning. Printed: the deletion's wall time, the
longest stop of the loop, and the most memory SQLite held at once (``sqlite3_memory_
highwater``, which counts an in-memory statement journal). Figures only.

    .venv/bin/python bench/deletion.py [--runs 2000] [--kb 20]
"""

from __future__ import annotations

import _sqlite3
import argparse
import asyncio
import ctypes
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fulmen.plan import PYTHON, Job
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    LogLine,
    NewDataclip,
    Project,
    RunCompletion,
    SQLStore,
    Workflow,
    WorkflowTrigger,
    open_store,
)

KEY = bytes(range(32))
_LIBRARY = ctypes.CDLL(_sqlite3.__file__)
_HIGHWATER = _LIBRARY.sqlite3_memory_highwater
_HIGHWATER.restype = ctypes.c_int64
_HIGHWATER.argtypes = [ctypes.c_int]


async def fill(store: SQLStore, runs: int, kb: int) -> None:
    await store.create_project(Project(id="p", name="bench"))
    job = Job(id="j", body="fn(x)", adaptor="common", language=PYTHON)
    await store.create_workflow(
        Workflow(id="w", project_id="p", name="w", jobs=(job,), triggers=(WorkflowTrigger("t"),))
    )
    text = "r" * (kb * 1000)
    for n in range(runs):
        made = await store.enqueue(
            EnqueueRequest(
                "w",
                input=NewDataclip(DataclipType.HTTP_REQUEST, {"n": n, "t": text}),
                trigger_id="t",
            )
        )
        await store.claim(1, ["*"], "bench")
        await store.join_run(made.run_id)
        await store.start_run(made.run_id)
        line = LogLine(message=f"{n} {text}", timestamp=datetime.now(UTC))
        await store.append_logs(made.run_id, [line], once=True)
        await store.complete_run(made.run_id, RunCompletion(ExitReason(Reason.SUCCESS)))


async def longest_stop(done: asyncio.Event) -> float:
    """The longest time, in ms, between two turns of the loop until ``done``."""
    longest = 0.0
    last = time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    return longest * 1000


async def main(runs: int, kb: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        async with await open_store(f"sqlite:///{path}", credential_key=KEY) as store:
            started = time.perf_counter()
            await fill(store, runs, kb)
            filled = time.perf_counter() - started
            size = path.stat().st_size / 1e6
            print(
                f"{runs} runs of {kb} KB of body and {kb} KB of log: {size:.0f} MB, {filled:.1f} s"
            )
            done = asyncio.Event()
            watch = asyncio.create_task(longest_stop(done))
            await asyncio.sleep(0.01)
            _HIGHWATER(1)  # reset
            started = time.perf_counter()
            await store.delete_project("p")
            took = time.perf_counter() - started
            done.set()
            stop = await watch
            memory = _HIGHWATER(0) / 1e6
            print(f"delete_project: {took * 1000:.0f} ms; the loop's longest stop {stop:.0f} ms;")
            print(f"  SQLite's memory at most {memory:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--kb", type=int, default=20)
    options = parser.parse_args()
    asyncio.run(main(options.runs, options.kb))
