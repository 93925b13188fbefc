"""Reading runs back: one run with its steps, listings, logs, and the plan a worker fetches."""

from __future__ import annotations

import functools
import heapq
import itertools
from typing import Any, Final, cast

from fulmen.errors import InputError, NotFoundError
from fulmen.lifecycle import RunState, StepState
from fulmen.plan import Options, Plan, languages_in
from fulmen.store import keychains, snapshots
from fulmen.store.catalog import job_from_document
from fulmen.store.db import Row, Tx, from_micros, loads, time_or_none, to_micros
from fulmen.store.models.common import Page
from fulmen.store.models.queue import Priority, WorkOrder
from fulmen.store.models.runs import LogEntry, Run, RunDetail, RunFilter, Step
from fulmen.store.paging import check_limit, decode_cursor, encode_cursor, make_page

__all__ = [
    "MAX_SEARCH_TEXT",
    "SEARCH_WINDOW",
    "get_logs",
    "get_plan",
    "get_run",
    "get_work_order",
    "list_runs",
    "options_of",
    "peek_run",
]

#: How many runs (newest first, after the other filters) one page of a text search reads.
SEARCH_WINDOW: Final = 1000
#: The longest text a search takes.
MAX_SEARCH_TEXT: Final = 200


async def get_run(tx: Tx, run_id: str) -> RunDetail:
    run = await peek_run(tx, run_id)
    steps = await tx.fetchall("get_steps", {"run_id": run_id})
    return RunDetail(
        run=run,
        steps=tuple(_step(tx, step) for step in steps),
        keychains=tuple(await keychains.run_choices(tx, run_id)),
    )


async def peek_run(tx: Tx, run_id: str) -> Run:
    """The run without its steps: one statement, for the hot path (a worker's join)."""
    row = await tx.fetchone("get_run", {"id": run_id})
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist", field="id")
    return _run(tx, row)


async def list_runs(tx: Tx, where: RunFilter, cursor: str | None, limit: int) -> Page[Run]:
    before = decode_cursor(cursor, int)[0] if cursor else None
    states = sorted(RunState(state).value for state in where.states) if where.states else None
    if where.states is not None and not states:
        raise InputError("an empty set of states matches no run; leave states out instead")
    params: dict[str, object] = {
        "project_id": where.project_id,
        "project_ids": None if where.project_ids is None else sorted(where.project_ids),
        "workflow_id": where.workflow_id,
        "work_order_id": where.work_order_id,
        "states": states,
        "inserted_from": where.inserted_from,
        "inserted_until": where.inserted_until,
        "before_seq": before,
        "limit": check_limit(limit) + 1,
    }
    if where.text:
        bodies = None if where.body_projects is None else sorted(where.body_projects)
        return await _search_runs(tx, where.text, params | {"body_projects": bodies}, limit)
    rows = await _listed(tx, params)
    seqs = {row["id"]: int(row["seq"]) for row in rows}
    return make_page([_run(tx, row) for row in rows], limit, lambda run: (seqs[run.id],))


#: The listings that start from one index of runs, most selective first: a filter on one work
#: order, workflow or project reads that one's runs only, rather than every run newest first
#: until a page is full (queries.sql: list_runs and list_runs_of_<kind>; a text search's
#: window the same ways, search_window and search_window_of_<kind>).
_ANCHORED = (
    ("work_order_id", "work_order"),
    ("workflow_id", "workflow"),
    ("project_id", "project"),
)


async def _listed(tx: Tx, params: dict[str, object], shape: str = "list_runs") -> list[Row]:
    """The first ``params["limit"]`` runs that pass ``params``' filters, newest first: with
    ``shape`` ``list_runs`` a page of a listing, with ``search_window`` a text search's
    window (their seqs only).

    Through the index of the one work order, workflow or project filtered on; for a caller
    who sees some projects only (``project_ids``, a member's listings: guard.Scope), each of
    those projects' newest through its index, merged, as many statements as projects: a
    member of a quiet project read every run newest first until a page was full, so the
    whole history (bench/history.py). ``shape`` itself is left for an instance admin's
    listing of everything.
    """
    kind = next((kind for key, kind in _ANCHORED if params[key] is not None), None)
    projects = params["project_ids"]
    if kind is not None or not isinstance(projects, list):
        return await tx.fetchall(f"{shape}_of_{kind}" if kind else shape, params)
    each = [
        await tx.fetchall(f"{shape}_of_project", {**params, "project_id": project})
        for project in projects
    ]
    newest = heapq.merge(*each, key=lambda row: int(row["seq"]), reverse=True)
    return list(itertools.islice(newest, cast(int, params["limit"])))


async def _search_runs(tx: Tx, text: str, params: dict[str, object], limit: int) -> Page[Run]:
    """The runs of the next :data:`SEARCH_WINDOW` (newest first, after the other filters)
    whose log lines or dataclips contain ``text``.

    How it scales: the window is the listing of the other filters (:func:`_listed`), so a
    search of one work order, workflow or project, or a member's, lists those next runs
    through their indexes, however many other runs the history holds (it started from every
    run newest first, which for a quiet workflow was the whole history: bench/history.py).
    A page then reads the log lines and dataclips of at most ``SEARCH_WINDOW`` runs, each
    run's lines through ``log_lines_run`` and stopping at its first match; nothing is
    loaded into memory but the window's seqs. So a page costs about the same at any depth
    and in any size of history; a rare word in a long history takes more pages, each saying
    how far back it has looked (its next cursor continues below the window). Its cost grows
    with the log lines in the window: measured (bench/search.py, 1,000 runs of 100 lines, a word
    in none of them) 20 ms on SQLite and 50 ms on PostgreSQL, so about 1 s per 2 million
    lines. No text index: these per-run probes read a run's lines by its index already, and
    a trigram index on PostgreSQL would help only a query that started from the matching
    lines rather than the runs.
    """
    if len(text) > MAX_SEARCH_TEXT:
        raise InputError(
            f"search for at most {MAX_SEARCH_TEXT} characters, not {len(text)}",
            code="search_too_long",
            field="text",
        )
    window_of = {**params, "limit": SEARCH_WINDOW}
    window = [int(row["seq"]) for row in await _listed(tx, window_of, "search_window")]
    if not window:
        return Page(())
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    search = {
        "seqs": window,
        "pattern": f"%{escaped}%",
        "body_projects": params["body_projects"],
        "limit": params["limit"],
    }
    found = await tx.fetchall("search_runs", search)
    seqs = {row["id"]: int(row["seq"]) for row in found}
    page = make_page([_run(tx, row) for row in found], limit, lambda run: (seqs[run.id],))
    if page.next_cursor is None and len(window) == SEARCH_WINDOW:
        return Page(page.items, encode_cursor(window[-1]))
    return page


async def get_logs(tx: Tx, run_id: str, cursor: str | None, limit: int) -> Page[LogEntry]:
    if await tx.fetchone("get_run", {"id": run_id}) is None:
        raise NotFoundError(f"run {run_id} does not exist", field="id")
    after_micros, after_id = decode_cursor(cursor, int, int) if cursor else (None, None)
    rows = await tx.fetchall(
        "get_logs",
        {
            "run_id": run_id,
            "after_logged_at": None if after_micros is None else from_micros(int(after_micros)),
            "after_id": after_id,
            "limit": check_limit(limit) + 1,
        },
    )
    items = [_log(tx, row) for row in rows]
    return make_page(items, limit, lambda log: (to_micros(log.timestamp), int(log.id)))


async def get_work_order(tx: Tx, work_order_id: str) -> WorkOrder:
    row = await tx.fetchone("get_work_order", {"id": work_order_id})
    if row is None:
        raise NotFoundError(f"work order {work_order_id} does not exist", field="id")
    return WorkOrder(
        id=row["id"],
        workflow_id=row["workflow_id"],
        trigger_id=row["trigger_id"],
        dataclip_id=row["dataclip_id"],
        inserted_at=tx.time(row["inserted_at"]),
        state=RunState(row["state"]) if row["state"] else None,
    )


async def get_plan(tx: Tx, run_id: str) -> dict[str, Any]:
    """The ``fetch:plan`` reply (spec §6.1), built from the snapshot the run records.

    Disabled edges are kept (the worker skips them, §6.2); triggers carry only their id, as
    Lightning sends them. Every job says its language (issue 15: Lightning's plans never do,
    and a worker would then tell it by the adaptor, which is wrong for a Python job saved
    with an ``@openfn/language-*`` adaptor).
    """
    row = await tx.fetchone("get_run_plan", {"id": run_id})
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist", field="id")
    snapshot = snapshots.parsed(row["snapshot_id"], row["document"])
    jobs = snapshot.jobs
    if jobs is None:  # a job names a keychain: the credential it chose for this run
        chosen = await keychains.run_jobs(tx, run_id, snapshot.job_documents)
        jobs = tuple(job_from_document(job) for job in chosen)
    plan = Plan(
        id=row["id"],
        project_id=row["project_id"],
        dataclip_id=row["dataclip_id"],
        starting_node_id=row["starting_node_id"],
        jobs=jobs,
        triggers=snapshot.triggers,
        edges=snapshot.edges,
        options=options_of(row["options"]),
    )
    return plan.to_wire()


@functools.lru_cache(maxsize=256)
def options_of(stored: str | bytes) -> Options:
    """A run's stored options: a few distinct documents among all runs (their coordinator's
    settings), each parsed once; ``Options`` is frozen, so one value serves them all."""
    return Options(**loads(stored))


def _run(tx: Tx, row: Row) -> Run:
    return Run(
        id=row["id"],
        work_order_id=row["work_order_id"],
        workflow_id=row["workflow_id"],
        project_id=row["project_id"],
        snapshot_id=row["snapshot_id"],
        dataclip_id=row["dataclip_id"],
        starting_node_id=row["starting_node_id"],
        state=RunState(row["state"]),
        queue=row["queue"],
        priority=Priority(row["priority"]),
        options=options_of(row["options"]),
        worker_name=row["worker_name"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        final_dataclip_id=row["final_dataclip_id"],
        inserted_at=tx.time(row["inserted_at"]),
        claimed_at=time_or_none(tx, row["claimed_at"]),
        joined_at=time_or_none(tx, row["joined_at"]),
        started_at=time_or_none(tx, row["started_at"]),
        finished_at=time_or_none(tx, row["finished_at"]),
        attempt=row["attempt"],
        retry_of=row["retry_of"],
        rerun_of=row["rerun_of"],
        not_before=time_or_none(tx, row["not_before"]),
        cancel_requested_at=time_or_none(tx, row["cancel_requested_at"]),
        snapshot_version=row.get("snapshot_version"),
        languages=tuple(languages_in(row.get("languages") or 1)),
    )


def _step(tx: Tx, row: Row) -> Step:
    return Step(
        id=row["id"],
        run_id=row["run_id"],
        job_id=row["job_id"],
        input_dataclip_id=row["input_dataclip_id"],
        output_dataclip_id=row["output_dataclip_id"],
        state=StepState(row["exit_reason"] or StepState.RUNNING),
        error_type=row["error_type"],
        error_message=row["error_message"],
        started_at=tx.time(row["started_at"]),
        finished_at=time_or_none(tx, row["finished_at"]),
    )


def _log(tx: Tx, row: Row) -> LogEntry:
    return LogEntry(
        id=str(row["id"]),
        run_id=row["run_id"],
        step_id=row["step_id"],
        source=row["source"],
        level=row["level"],
        message=row["message"],
        timestamp=tx.time(row["logged_at"]),
    )
