"""The audit trail (issue 18): records appended, listed newest first, and swept once past
their retention.

*Append-only, in the database.* The schema (0015) refuses every UPDATE of a record and
every DELETE (and, on PostgreSQL, TRUNCATE), whoever runs it: the coordinator, an admin at
a SQL prompt, a bug. The one exception is the retention sweep, through a leave scoped to its
own transaction and to records older than a given time: on SQLite a row of ``audit_sweeps``
that the sweep inserts and removes in the transaction that deletes (no other connection
sees it), on PostgreSQL the transaction-local setting ``fulmen.audit_sweep_before``
(``set_config(…, true)``). Both are read by the triggers that refuse everything else. Why a
leave and not a privileged role: SQLite has no roles, and a PostgreSQL role of its own would
make every installation create and grant one; the leave is as narrow (one transaction, only
older records) and is written the same way on both. What it cannot stop is someone who may
drop triggers (the database's owner): against them only a copy kept elsewhere helps, which
is what the export is for.

*In the change's transaction.* :func:`append` is one statement; the coordinator calls the
store's ``append_audit`` inside ``Store.together()`` with the change it records, so both are
made durable by one commit (coordinator/audit.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from fulmen.errors import InputError
from fulmen.store.db import Row, Tx, dumps, loads_or_none, text
from fulmen.store.models.audit import (
    ACTOR_KINDS,
    Actor,
    AuditFilter,
    AuditRecord,
    NewAuditRecord,
    Target,
)
from fulmen.store.models.common import Page
from fulmen.store.paging import check_limit, decode_cursor, make_page

__all__ = ["MAX_FIELD", "SINCE_PROBE", "append", "list_records", "sweep_batch"]

#: The longest text a record keeps in one of its short fields (a name, an address); longer
#: ones are cut, never refused: a record is never lost for its length.
MAX_FIELD = 500
#: How many of the newest records a listing with a start time (and no filter that has an
#: index) reads for its page before it reads the records since then instead (_listing).
SINCE_PROBE = 1000


async def append(tx: Tx, record: NewAuditRecord, now: datetime) -> int:
    """Append ``record`` at ``now``; its seq.

    Raises:
        InputError: an actor kind the trail does not know, or an action that is not a code
            (``noun.verb``): a bug of the caller, refused before anything is written.
    """
    if record.actor.kind not in ACTOR_KINDS:
        raise InputError(f"{record.actor.kind!r} is not a kind of actor", code="bad_actor")
    noun, dot, verb = record.action.partition(".")
    if not (noun and dot and verb) or len(record.action) > 100:
        raise InputError(f"{record.action!r} is not an action code", code="bad_action")
    row = await tx.fetchone(
        "insert_audit_record",
        {
            "at": now,
            "actor_kind": record.actor.kind,
            "actor_id": _cut(record.actor.id),
            "actor_name": _cut(record.actor.name),
            "address": _cut(record.actor.address),
            "action": record.action,
            "project_id": record.project_id,
            "target_type": _cut(record.target.type),
            "target_id": _cut(record.target.id),
            "target_name": _cut(record.target.name),
            "before": _document(record.before),
            "after": _document(record.after),
            "detail": _document(record.detail),
        },
    )
    assert row is not None  # INSERT … RETURNING
    return int(row["seq"])


async def list_records(
    tx: Tx, where: AuditFilter, cursor: str | None, limit: int
) -> Page[AuditRecord]:
    before = decode_cursor(cursor, int)[0] if cursor else None
    params: dict[str, object] = {
        "project_id": where.project_id,
        "actor": where.actor,
        "action": where.action,
        "target": where.target,
        "since": where.since,
        "until": where.until,
        "before_seq": before,
        "limit": check_limit(limit) + 1,
    }
    rows = await _listed(tx, where, params)
    return make_page([_record(tx, row) for row in rows], limit, lambda record: (record.seq,))


async def _listed(tx: Tx, where: AuditFilter, params: dict[str, object]) -> list[Row]:
    """The first ``params["limit"]`` records ``where`` matches, newest first, read by the
    listing :func:`_listing` picks (and for a start time alone, as it says)."""
    query, params["action_key"] = _listing(where)
    if query != "list_audit_records" or where.since is None:
        return await tx.fetchall(query, params)
    rows = await tx.fetchall("list_audit_records_recent", params | {"probe": SINCE_PROBE})
    if len(rows) < cast(int, params["limit"]):
        rows = await tx.fetchall("list_audit_records_since", params)
    return rows


def _listing(where: AuditFilter) -> tuple[str, str | None]:
    """The listing that starts from the index of ``where``'s likeliest rarest filter, and the
    action's key it reads that index by (the code or the noun, queries.sql).

    ``list_audit_records`` reads the whole trail newest first until a page is full: for a
    filter few records match (a target, an actor, ``sign_in.failed`` among a million
    sign-ins, a quiet project), that was every record (bench/history.py). Each of the
    others starts from one filter's index and checks the rest as that listing does, so it
    reads that filter's records newest first, however long the rest of the trail. Time
    bounds alone: ``list_records`` reads the :data:`SINCE_PROBE` newest records, and when
    they hold no page, the records since ``since`` through the time index, sorted; that
    index is in ``at``'s order, not the seq's (clocks step back; PostgreSQL's appends commit
    in any order), so it serves only a start. ``until`` alone still reads the trail newest
    first, past every record newer than it.
    """
    if where.target is not None:
        return "list_audit_records_of_target", None
    if where.actor is not None:
        return "list_audit_records_of_actor", None
    if where.action is not None:
        noun, dot, rest = where.action.partition(".")
        if dot:
            return "list_audit_records_of_code", f"{noun}.{rest.partition('.')[0]}"
        return "list_audit_records_of_noun", noun
    if where.project_id is not None:
        return "list_audit_records_of_project", None
    return "list_audit_records", None


async def sweep_batch(tx: Tx, project_id: str | None, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` records older than ``before``: the project's, or with
    ``project_id`` ``None`` the whole instance's and those of projects that no longer exist.
    How many went.

    The only delete the schema lets through, by the leave described in the module's
    docstring, taken back before this returns (and with the transaction if it raises).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"a sweep batch is a positive number of records, not {limit!r}")
    params: dict[str, object] = {"before": before, "limit": limit}
    await tx.execute("allow_audit_sweep", {"before": before})
    if project_id is None:
        gone = await tx.execute("delete_old_instance_audit_records", params)
    else:
        gone = await tx.execute("delete_old_audit_records", {**params, "project_id": project_id})
    await tx.execute("end_audit_sweep")
    return gone


def _cut(value: str) -> str:
    value = text(value)
    return value if len(value) <= MAX_FIELD else value[: MAX_FIELD - 1] + "…"


def _document(value: object) -> str | None:
    """JSON text of a document; a NUL character in one of its strings (which neither
    dialect keeps) is dropped rather than the record refused."""
    if value is None:
        return None
    try:
        return dumps(value)
    except InputError:
        return dumps(_without_nul(value))


def _without_nul(value: object) -> object:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping):
        return {text(str(key)): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


def _record(tx: Tx, row: Row) -> AuditRecord:
    documents: dict[str, Any] = {
        name: loads_or_none(row[name]) for name in ("before", "after", "detail")
    }
    return AuditRecord(
        seq=int(row["seq"]),
        at=tx.time(row["at"]),
        actor=Actor(row["actor_kind"], row["actor_id"], row["actor_name"], row["address"]),
        action=row["action"],
        target=Target(row["target_type"], row["target_id"], row["target_name"]),
        project_id=row["project_id"],
        **documents,
    )
