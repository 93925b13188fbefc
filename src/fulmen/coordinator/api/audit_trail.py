"""The audit trail over the REST API (issue 18): ``GET /api/projects/{id}/audit`` for the
project's admins and owners, ``GET /api/audit`` for instance admins (every record: the
projects', the sign-ins, the users'), filtered by actor, action, target and time, newest
first, in pages as the other listings are; or exported whole, ``?format=jsonl`` (one record
a line, as the listing shows it) or ``?format=csv`` (one record a row, the documents as JSON
text), streamed a page of the store at a time, as a file to save.

The dashboard's audit pages read the same filters (:class:`AuditQuery`) and export through
the same :func:`export`.

*CSV and spreadsheets.* Some of what a record holds was typed by anyone (the e-mail of a
failed sign-in); a cell that starts with ``=``, ``+``, ``-``, ``@`` or a tab would be run as
a formula by a spreadsheet that opens the file, so such a cell is written with a ``'``
before it (OWASP's advice for CSV injection). The JSON lines are exact.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from fulmen.coordinator import access
from fulmen.coordinator.access import Permission
from fulmen.coordinator.api.auth import Caller
from fulmen.coordinator.api.schemas.audit import AuditRecordDoc
from fulmen.coordinator.api.schemas.common import PageDoc, PathId
from fulmen.coordinator.core import Coordinator
from fulmen.coordinator.moments import moment
from fulmen.errors import InputError
from fulmen.store import AuditFilter, AuditRecord, Store

__all__ = ["EXPORT_COLUMNS", "AuditQuery", "export", "router"]

router = APIRouter()

#: The columns of a CSV export, in order.
EXPORT_COLUMNS: Final = (
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "address",
    "action",
    "project_id",
    "target_type",
    "target_id",
    "target_name",
    "before",
    "after",
    "detail",
)
#: Records read from the store at a time while exporting.
_EXPORT_PAGE: Final = 500
_MAX_FILTER: Final = 200
#: An action filter: a code, or the codes under a noun (``workflow``, ``workflow.*``).
_ACTION: Final = re.compile(r"[a-z_]+(?:\.[a-z_]+)?")
#: What a spreadsheet would read as the start of a formula.
_FORMULA: Final = ("=", "+", "-", "@", "\t", "\r")

Format = Literal["jsonl", "csv"]


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """An audit listing's filters as a URL holds them (empty: not filtered)."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def read(cls, params: Mapping[str, str]) -> AuditQuery:
        """The filters of a query string, each checked (InputError naming the field)."""
        query = cls(**{f.name: (params.get(f.name) or "").strip() for f in fields(cls)})
        query.filter(None)  # every value is checked here, before any page or export starts
        return query

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def filter(self, project_id: str | None) -> AuditFilter:
        """The store's filter: the records of ``project_id`` (``None``: of any) that these
        match.

        Raises:
            InputError: ``bad_filter`` (too long), ``bad_action``, ``bad_time``,
                ``bad_time_range``, each naming its field.
        """
        for f in fields(self):
            if len(getattr(self, f.name)) > _MAX_FILTER:
                raise InputError(
                    f"{f.name} is at most {_MAX_FILTER} characters", code="bad_filter", field=f.name
                )
        action = self.action.removesuffix("*").removesuffix(".")
        if action and not _ACTION.fullmatch(action):
            raise InputError(
                "action is a code (workflow.updated) or a noun (workflow: every workflow.…)",
                code="bad_action",
                field="action",
            )
        since, until = moment(self.since, "since"), moment(self.until, "until")
        if since and until and since >= until:
            raise InputError("since must be before until", code="bad_time_range", field="until")
        return AuditFilter(
            project_id=project_id,
            actor=self.actor or None,
            action=action or None,
            target=self.target or None,
            since=since,
            until=until,
        )

    def url_query(self, **more: str) -> str:
        """The query string of these filters (and ``more``), without empty values."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | more
        return urlencode({name: value for name, value in values.items() if value})


def _store(request: Request) -> Store:
    c: Coordinator = request.app.state.coordinator
    return c.store


ActorIs = Annotated[str | None, Query(description="an actor's id or name (an e-mail)")]
ActionIs = Annotated[str | None, Query(description="a code, or a noun: workflow, sign_in")]
TargetIs = Annotated[str | None, Query(description="a target's id")]
Since = Annotated[str | None, Query(description="at or after (ISO 8601; UTC without a zone)")]
Until = Annotated[str | None, Query(description="before (ISO 8601; UTC without a zone)")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=500)]
_EXPORTS: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "A page of records; with format, every record, as a file",
        "content": {"application/x-ndjson": {}, "text/csv": {}},
    }
}


@router.get(
    "/projects/{project_id}/audit",
    tags=["audit"],
    response_model=PageDoc[AuditRecordDoc],
    responses=_EXPORTS,
)
async def project_audit(
    request: Request,
    project_id: PathId,
    me: Caller,
    actor: ActorIs = None,
    action: ActionIs = None,
    target: TargetIs = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    format: Format | None = None,
) -> PageDoc[AuditRecordDoc] | Response:
    """The project's audit trail, newest first: its admins' and owners' to read."""
    access.require(me, Permission.MANAGE, project_id)
    store = _store(request)
    await store.get_project(project_id)
    query = AuditQuery(*(v or "" for v in (actor, action, target, since, until)))
    where = query.filter(project_id)
    if format is not None:
        return export(store, where, format, f"project-{project_id}")
    return await _page(store, where, cursor, limit)


@router.get(
    "/audit",
    tags=["audit"],
    response_model=PageDoc[AuditRecordDoc],
    responses=_EXPORTS,
)
async def instance_audit(
    request: Request,
    me: Caller,
    project_id: Annotated[str | None, Query(description="one project's records only")] = None,
    actor: ActorIs = None,
    action: ActionIs = None,
    target: TargetIs = None,
    since: Since = None,
    until: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    format: Format | None = None,
) -> PageDoc[AuditRecordDoc] | Response:
    """Every record of the instance (the projects', deleted ones' included, the sign-ins,
    the users'), newest first: instance admins' to read."""
    access.require_instance_admin(me, "the instance's audit trail")
    query = AuditQuery(*(v or "" for v in (actor, action, target, since, until)))
    where = query.filter(project_id or None)
    if format is not None:
        return export(_store(request), where, format, "instance")
    return await _page(_store(request), where, cursor, limit)


async def _page(
    store: Store, where: AuditFilter, cursor: str | None, limit: int
) -> PageDoc[AuditRecordDoc]:
    page = await store.list_audit(where, cursor=cursor, limit=limit)
    items = [AuditRecordDoc.of(record) for record in page.items]
    return PageDoc(items=items, next_cursor=page.next_cursor)


# -- exports -----------------------------------------------------------------------------------


def export(store: Store, where: AuditFilter, kind: Format, scope: str) -> StreamingResponse:
    """Every record ``where`` matches, newest first, as a file named for ``scope`` and now."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="fulmen-audit-{scope}-{stamp}.{kind}"',
        "Cache-Control": "no-store",
    }
    if kind == "csv":
        body: AsyncIterator[str] | AsyncIterator[bytes] = _csv(store, where)
        media = "text/csv; charset=utf-8"
    else:
        body, media = _jsonl(store, where), "application/x-ndjson"
    return StreamingResponse(body, media_type=media, headers=headers)


async def _pages(store: Store, where: AuditFilter) -> AsyncIterator[list[AuditRecord]]:
    """The records a page of the store at a time, each page its own read: the trail is never
    in memory whole, and no read is held open while a slow client takes its time."""
    cursor = None
    while True:
        page = await store.list_audit(where, cursor=cursor, limit=_EXPORT_PAGE)
        if page.items:
            yield list(page.items)
        if (cursor := page.next_cursor) is None:
            return


async def _jsonl(store: Store, where: AuditFilter) -> AsyncIterator[bytes]:
    async for records in _pages(store, where):
        yield b"".join(
            orjson.dumps(AuditRecordDoc.of(r, diff=False).model_dump(mode="json")) + b"\n"
            for r in records
        )


async def _csv(store: Store, where: AuditFilter) -> AsyncIterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield out.getvalue()
    async for records in _pages(store, where):
        out.seek(0)
        out.truncate()
        writer.writerows([_cell(value) for value in _row(r)] for r in records)
        yield out.getvalue()


def _row(r: AuditRecord) -> tuple[object, ...]:
    def document(value: object) -> str:
        return "" if value is None else orjson.dumps(value).decode()

    return (
        r.seq,
        r.at.astimezone(UTC).isoformat(),
        r.actor.kind,
        r.actor.id,
        r.actor.name,
        r.actor.address,
        r.action,
        r.project_id or "",
        r.target.type,
        r.target.id,
        r.target.name,
        document(r.before),
        document(r.after),
        document(r.detail),
    )


def _cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs (see the module's docstring)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value
