"""What the coordinator's reads cost as the run history grows, on SQLite.

SQLite's statements run on the coordinator's event loop (``store/sqlite.py``): a read that
visits every run ever made stops every socket for as long as it takes. This fills a store
with ``--history`` ended runs (written straight into the file, which is far quicker than
running them) beside a few runs queued and in flight and a quiet workflow's one run, then
times what the coordinator reads again and again whatever its load: the queue's depth (the
hub's poll, ``/health/ready``, ``/metrics``), the runs per live state and per final state
(``/metrics``), the reaper's sweep (claims never joined, lost runs, cancels to tell); the
pages the dashboard and the API show: the runs of the quiet workflow and of its work order,
and a text search within each (a word in none of their runs); the runs page, and a search,
of a member of the quiet workflow's project alone. Beside the runs, an audit trail of
``--audit`` records (a busy user's sign-ins and workflow changes) buries a few rare ones:
the trail's listings filtered on one target, actor, action code, noun or quiet project,
or from a time after its last record, and the retention sweep's batches of a project's
and of the instance's records (nothing old enough to go: the daily case). Printed: the
milliseconds of each, the best of five, for an empty history and for ``--history`` runs
and ``--audit`` records; a read whose cost grows with the history would show it. Figures
only.

    .venv/bin/python bench/history.py [--history 1000000] [--audit 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sqlite3
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.plan import PYTHON, Job
from fulmen.store import (
    Actor,
    AuditFilter,
    DataclipType,
    EnqueueRequest,
    NewAuditRecord,
    NewDataclip,
    Project,
    RunFilter,
    SQLStore,
    Target,
    Workflow,
    WorkflowTrigger,
    open_store,
)
from fulmen_testing.timing import best_ms

KEY = bytes(range(32))
LIVE = 20
#: The final states, each run of the history ending in the next one.
ENDED = [state.value for state in sorted(FINAL_RUN_STATES)]
#: Queue, priority and options of every run of the history.
QUEUED = ("default", 0, "{}")
#: The trail's busy user, and the two things the history's records say of them by turns.
BUSY = ("user", "u1", "ada@example.org", "192.0.2.7")
TRAIL = (
    ("sign_in.succeeded", None, "session", ""),
    ("workflow.updated", "p", "workflow", "w"),
)
#: The rare records the trail's history buries, and the filter that finds each.
RARE = {
    "a target's records": (
        NewAuditRecord(Actor(*BUSY), "credential.created", Target("credential", "c9"), "q"),
        AuditFilter(target="c9"),
    ),
    "an actor's records": (
        NewAuditRecord(
            Actor("anonymous", "", "eve@example.org", "203.0.113.9"),
            "sign_in.failed",
            Target("session", ""),
        ),
        AuditFilter(actor="eve@example.org"),
    ),
}
RARE_FILTERS = {
    "an action code's": AuditFilter(action="sign_in.failed"),
    "a noun's records": AuditFilter(action="credential"),
    "a quiet project's": AuditFilter(project_id="q"),
}


async def seed(store: SQLStore) -> str:
    """The workflow ``w`` and its runs queued or in flight, and a quiet workflow with one run
    (whose work order is returned) that the history then buries."""
    await store.create_project(Project(id="p", name="bench"))
    await store.create_project(Project(id="q", name="quiet"))
    for record, _ in RARE.values():
        await store.append_audit(record)
    for workflow, trigger, project in (("w", "t", "p"), ("quiet", "tq", "q")):
        job = Job(id=f"{workflow}-j", body="fn(x)", adaptor="common", language=PYTHON)
        triggers = (WorkflowTrigger(id=trigger),)
        await store.create_workflow(
            Workflow(id=workflow, project_id=project, name=workflow, jobs=(job,), triggers=triggers)
        )
    body = NewDataclip(DataclipType.HTTP_REQUEST, {})
    quiet = await store.enqueue(EnqueueRequest(workflow_id="quiet", input=body, trigger_id="tq"))
    await store.cancel_run(quiet.run_id)
    for i in range(LIVE):
        body = NewDataclip(DataclipType.HTTP_REQUEST, {"i": i})
        await store.enqueue(EnqueueRequest(workflow_id="w", input=body, trigger_id="t"))
    claimed = await store.claim(LIVE // 2, ["*"], "bench")  # half queued, half claimed
    for run in claimed[: LIVE // 4]:  # and half of those started
        await store.join_run(run.id)
        await store.start_run(run.id)
    return quiet.work_order_id


def add_history(path: Path, runs: int, records: int) -> None:
    """``runs`` ended runs of the seeded workflow, as the store would have left them, and
    ``records`` of the busy user's in the audit trail."""
    database = sqlite3.connect(path)
    snapshot, work_order = database.execute(
        "SELECT snapshot_id, work_order_id FROM runs WHERE workflow_id = 'w' LIMIT 1"
    ).fetchone()
    (seq,) = database.execute("SELECT max(seq) FROM runs").fetchone()
    now = int(datetime.now(UTC).timestamp() * 1e6)
    times = (now, now, now, now)  # inserted, claimed, started, finished
    rows = (
        (
            seq + 1 + i,
            str(uuid.uuid4()),
            work_order,
            "w",
            "p",
            snapshot,
            "t",
            ENDED[i % 7],
            *QUEUED,
            *times,
        )
        for i in range(runs)
    )
    database.executemany(
        "INSERT INTO runs (seq, id, work_order_id, workflow_id, project_id, snapshot_id,"
        " starting_node_id, state, queue, priority, options, inserted_at, claimed_at,"
        " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    trail = (
        (now, *BUSY, action, project, kind, target)
        for action, project, kind, target in (TRAIL[i % 2] for i in range(records))
    )
    database.executemany(
        "INSERT INTO audit_records (at, actor_kind, actor_id, actor_name, address, action,"
        " project_id, target_type, target_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        trail,
    )
    database.commit()
    database.close()


async def measure(store: SQLStore, quiet_order: str) -> dict[str, float]:
    long_ago = datetime.now(UTC) - timedelta(days=1)
    quiet, order = RunFilter(workflow_id="quiet"), RunFilter(work_order_id=quiet_order)
    member = RunFilter(project_ids=frozenset({"q"}))  # what guard.Scope gives a member
    reads: dict[str, Callable[[], Awaitable[object]]] = {
        "a quiet workflow's runs": lambda: store.list_runs(quiet),
        "a work order's runs": lambda: store.list_runs(order),
        "search a quiet workflow": lambda: store.list_runs(replace(quiet, text="needle")),
        "search a work order": lambda: store.list_runs(replace(order, text="needle")),
        "a quiet project member's runs": lambda: store.list_runs(member),
        "a quiet project member's search": lambda: store.list_runs(replace(member, text="x")),
        "queue depth": store.queue_depth,
        "runs per live state": store.run_counts,
        "runs per final state": store.run_endings,
        "claims never joined": lambda: store.rollback_unjoined(long_ago),
        "lost runs": lambda: store.mark_lost(grace=timedelta(days=1)),
        "cancels to tell": store.cancel_requested,
    }
    filters = {name: where for name, (_, where) in RARE.items()} | RARE_FILTERS
    for name, where in filters.items():
        reads[f"audit: {name}"] = functools.partial(store.list_audit, where)
    later = AuditFilter(since=datetime.now(UTC) + timedelta(hours=1))
    reads["audit: from a time on (none)"] = functools.partial(store.list_audit, later)
    reads["audit sweep: a project's"] = lambda: store.sweep_audit("p", long_ago)
    reads["audit sweep: the instance's"] = lambda: store.sweep_audit(None, long_ago)
    return {name: await best_ms(read) for name, read in reads.items()}


async def main(history: int, records: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fulmen.db"
        url = f"sqlite:///{path}"
        async with await open_store(url, credential_key=KEY) as store:
            quiet_order = await seed(store)
            empty = await measure(store, quiet_order)
        add_history(path, history, records)
        async with await open_store(url, credential_key=KEY) as store:
            full = await measure(store, quiet_order)
    print(f"SQLite, {LIVE} runs queued or in flight; ms per read, best of five")
    print(f"  {'read':<32}{'no history':>12}{f'{history:,} runs, {records:,} records':>36}")
    for name, ms in empty.items():
        print(f"  {name:<32}{ms:>12.2f}{full[name]:>36.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=1_000_000, help="ended runs to add")
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit records to add")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.history, arguments.audit))
