"""What one page of a text search of runs costs (issue 17), on SQLite and PostgreSQL: a
project with ``--runs`` runs of ``--lines`` log lines each, then the dashboard's search for a
word in none of them (the worst case: every run of the window read to its last line), one in
the newest run, and a listing without text for comparison.

Printed per backend: the milliseconds of each, the best of five. The window is
``fulmen.store.reads.SEARCH_WINDOW`` runs.

Run: ``.venv/bin/python bench/search.py [--runs 1000] [--lines 100] [--postgres URL]``
(PostgreSQL: a database to create a schema in; default the test server at 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from fulmen.plan import PYTHON, Job
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    LogLine,
    NewDataclip,
    Project,
    RunFilter,
    SQLStore,
    Workflow,
    WorkflowTrigger,
    open_store,
    reads,
)
from fulmen_testing.coordinator import pg_database, pg_schema_url
from fulmen_testing.timing import best_ms

KEY = bytes(range(32))


async def fill(store: SQLStore, runs: int, lines: int) -> None:
    await store.create_project(Project(id="p", name="bench"))
    job = Job(id="j1", body="fn(x)", adaptor="common", language=PYTHON)
    await store.create_workflow(
        Workflow(id="w", project_id="p", name="w", jobs=(job,), triggers=(WorkflowTrigger(id="t"),))
    )
    now = datetime.now(UTC)
    for i in range(runs):
        body = NewDataclip(DataclipType.HTTP_REQUEST, {"patient": i, "clinic": "north"})
        made = await store.enqueue(EnqueueRequest(workflow_id="w", input=body, trigger_id="t"))
        await store.claim(1, ["*"], "bench")
        batch = [
            LogLine(message=f"run {i} line {n}: synced record {n * 7}", timestamp=now)
            for n in range(lines)
        ]
        await store.append_logs(made.run_id, batch)


async def measure(name: str, url: str, runs: int, lines: int) -> None:
    async with await open_store(url, credential_key=KEY) as store:
        await fill(store, runs, lines)
        absent = await best_ms(lambda: store.list_runs(RunFilter(text="zebra"), limit=50))
        newest = await best_ms(lambda: store.list_runs(RunFilter(text=f"run {runs - 1} "), limit=1))
        plain = await best_ms(lambda: store.list_runs(RunFilter(), limit=50))
    print(
        f"{name}: {runs} runs x {lines} lines, window {reads.SEARCH_WINDOW}: "
        f"absent word {absent:.1f} ms, in the newest run {newest:.1f} ms, "
        f"no text {plain:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        asyncio.run(measure("sqlite", url, args.runs, args.lines))
    with pg_database() as database:
        asyncio.run(measure("postgres", pg_schema_url(database), args.runs, args.lines))


if __name__ == "__main__":
    main()
