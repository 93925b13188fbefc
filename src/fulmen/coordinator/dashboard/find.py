"""The runs list's current result (its filters: filters.py) exported as CSV or JSON, the
links beside the list. A filter that cannot be read is answered 400 with its code and
message, before anything is sent.

Exports stream the whole result, a page of the store at a time (each page its own read,
never the whole history in memory), in the order of the list: newest first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from fulmen.coordinator.access import Principal
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.dashboard.filters import RunQuery
from fulmen.coordinator.dashboard.forms import Guarded
from fulmen.coordinator.dashboard.pages import catalog
from fulmen.coordinator.dashboard.session import Signed
from fulmen.coordinator.guard import scope_of
from fulmen.errors import InputError
from fulmen.store import Run, RunFilter, Store

__all__ = ["EXPORT_COLUMNS", "export_rows", "router"]

router = APIRouter(route_class=Guarded)

#: The columns of an export, in order (JSON objects have the same keys).
EXPORT_COLUMNS: Final = (
    "run_id",
    "workflow_id",
    "workflow",
    "state",
    "queued_at",
    "started_at",
    "finished_at",
    "duration_s",
    "work_order_id",
    "error_type",
)
_EXPORT_PAGE: Final = 500


def export_rows(runs: Iterable[Run], names: Mapping[str, str]) -> list[dict[str, object]]:
    """One export row per run, with :data:`EXPORT_COLUMNS` (times in ISO 8601, UTC)."""
    rows: list[dict[str, object]] = []
    for run in runs:
        seconds = (
            round((run.finished_at - run.started_at).total_seconds(), 3)
            if run.started_at and run.finished_at
            else None
        )
        rows.append(
            {
                "run_id": run.id,
                "workflow_id": run.workflow_id,
                "workflow": names.get(run.workflow_id, ""),
                "state": run.state.value,
                "queued_at": _iso(run.inserted_at),
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "duration_s": seconds,
                "work_order_id": run.work_order_id,
                "error_type": run.error_type,
            }
        )
    return rows


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


async def _pages(store: Store, where: RunFilter) -> AsyncIterator[list[Run]]:
    cursor = None
    while True:
        page = await store.list_runs(where, cursor=cursor, limit=_EXPORT_PAGE)
        if page.items:
            yield list(page.items)
        if (cursor := page.next_cursor) is None:
            return


async def _csv(store: Store, where: RunFilter, names: Mapping[str, str]) -> AsyncIterator[str]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    yield out.getvalue()
    async for runs in _pages(store, where):
        out.seek(0)
        out.truncate()
        writer.writerows(export_rows(runs, names))
        yield out.getvalue()


async def _json(store: Store, where: RunFilter, names: Mapping[str, str]) -> AsyncIterator[bytes]:
    yield b"["
    first = True
    async for runs in _pages(store, where):
        for row in export_rows(runs, names):
            yield (b"\n" if first else b",\n") + orjson.dumps(row)
            first = False
    yield b"\n]\n"


async def workflow_names(store: Store, me: Principal) -> dict[str, str]:
    listed = await catalog(store, me)
    return {w.workflow.id: w.workflow.name for _, workflows in listed for w in workflows}


def refusal(error: InputError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message, "field": error.field}}, 400
    )


@router.get("/runs.csv")
async def export_csv(request: Request, me: Signed) -> Response:
    return await _export(request, me, "csv")


@router.get("/runs.json")
async def export_json(request: Request, me: Signed) -> Response:
    return await _export(request, me, "json")


async def _export(request: Request, me: Principal, kind: str) -> Response:
    """The runs of the caller's projects that the list's filters ask for."""
    c: Coordinator = request.app.state.coordinator
    try:
        where = RunQuery.read(request.query_params).filter()
    except InputError as error:
        return refusal(error)
    where = (await scope_of(c.store, me)).runs(where)
    names = await workflow_names(c.store, me)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="fulmen-runs-{stamp}.{kind}"',
        "Cache-Control": "no-store",
    }
    if kind == "csv":
        body: AsyncIterator[str] | AsyncIterator[bytes] = _csv(c.store, where, names)
        media = "text/csv; charset=utf-8"
    else:
        body, media = _json(c.store, where, names), "application/json"
    return StreamingResponse(body, media_type=media, headers=headers)
