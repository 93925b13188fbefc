"""The audit trail in the store, on SQLite and PostgreSQL: records listed newest first with
filters and cursors; append-only for anyone at a SQL prompt (an UPDATE, a DELETE, a TRUNCATE
is refused by the database itself); the retention sweep alone deletes, and only what is older
than its cutoff; a change and its record committed together."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta

import psycopg
import pytest

from fulmen.errors import InputError
from fulmen.store import (
    Actor,
    AuditFilter,
    AuditRecord,
    NewAuditRecord,
    Project,
    SQLStore,
    Target,
    audit,
    sqlite_path,
)
from fulmen_testing.clock import FakeClock

from .conftest import Backend

pytestmark = pytest.mark.anyio

ADA = Actor("user", "u1", "ada@example.org", "192.0.2.7")
BOT = Actor("service", "t9", "deploy bot", "198.51.100.2")
NIGHTLY = Target("workflow", "w1", "nightly")


def record(
    action: str,
    *,
    actor: Actor = ADA,
    project_id: str | None = "p1",
    target: Target = NIGHTLY,
    **documents: dict[str, object],
) -> NewAuditRecord:
    return NewAuditRecord(actor, action, target, project_id, **documents)  # type: ignore[arg-type]


async def listed(store: SQLStore, **where: object) -> list[str]:
    page = await store.list_audit(AuditFilter(**where), limit=100)  # type: ignore[arg-type]
    return [f"{r.action}:{r.target.id}" for r in page.items]


async def test_records_come_back_as_appended_newest_first(
    store: SQLStore, clock: FakeClock
) -> None:
    before = {"name": "nightly", "jobs": [{"body": "fn(lambda s: s)\n"}]}
    after = {"name": "nightly", "jobs": [{"body": "fn(lambda s: {**s, 'n': 1})\n"}]}
    first = await store.append_audit(record("workflow.updated", before=before, after=after))
    clock.advance(1)
    second = await store.append_audit(
        record("sign_in.failed", actor=Actor("anonymous", "", "eve@example.org", "203.0.113.9"),
               project_id=None, target=Target("session", ""), detail={"reason": "bad password"})
    )  # fmt: skip
    assert second > first
    page = await store.list_audit()
    newest, oldest = page.items
    assert isinstance(oldest, AuditRecord)
    assert (oldest.seq, oldest.actor, oldest.action, oldest.project_id) == (
        first,
        ADA,
        "workflow.updated",
        "p1",
    )
    assert oldest.target == Target("workflow", "w1", "nightly")
    assert (oldest.before, oldest.after, oldest.detail) == (before, after, None)
    assert newest.at - oldest.at == timedelta(seconds=1)
    assert newest.actor.address == "203.0.113.9" and newest.detail == {"reason": "bad password"}


async def test_filters_and_cursors(store: SQLStore, clock: FakeClock) -> None:
    start = clock.now()
    await store.append_audit(record("workflow.created"))
    await store.append_audit(record("workflow.updated", actor=BOT))
    clock.advance(60)
    await store.append_audit(record("credential.created", target=Target("credential", "c1")))
    await store.append_audit(record("workflows.exported", project_id="p2"))  # not workflow.*
    await store.append_audit(record("sign_in.succeeded", project_id=None))

    assert await listed(store, project_id="p1") == [
        "credential.created:c1",
        "workflow.updated:w1",
        "workflow.created:w1",
    ]
    assert await listed(store, action="workflow") == ["workflow.updated:w1", "workflow.created:w1"]
    assert await listed(store, action="workflow.created") == ["workflow.created:w1"]
    assert await listed(store, actor="deploy bot") == ["workflow.updated:w1"]
    assert await listed(store, actor="t9") == ["workflow.updated:w1"]
    assert len(await listed(store, actor="ADA@example.org")) == 4  # an e-mail in any case
    assert await listed(store, target="c1") == ["credential.created:c1"]
    assert len(await listed(store, since=start + timedelta(seconds=60))) == 3
    assert len(await listed(store, until=start + timedelta(seconds=60))) == 2
    assert await listed(store, action="%") == []  # no pattern: a code

    seen: list[int] = []
    cursor = None
    while True:
        page = await store.list_audit(cursor=cursor, limit=2)
        seen += [r.seq for r in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 5


async def test_a_record_that_is_not_one_is_refused(store: SQLStore) -> None:
    with pytest.raises(InputError) as refused:
        await store.append_audit(record("updated"))
    assert refused.value.code == "bad_action"
    with pytest.raises(InputError) as refused:
        await store.append_audit(record("x.y", actor=Actor("root", "0", "root")))
    assert refused.value.code == "bad_actor"
    long = "x" * 5000
    await store.append_audit(record("workflow.updated", target=Target("workflow", "w", long)))
    (kept,) = (await store.list_audit()).items
    assert len(kept.target.name) == 500 and kept.target.name.endswith("…")


def _sql(backend: Backend, statement: str) -> None:
    """Run ``statement`` as someone at a SQL prompt would (a connection of their own)."""
    if backend.conninfo is None:
        with closing(sqlite3.connect(sqlite_path(backend.url))) as conn, conn:
            conn.execute(statement)
        return
    with psycopg.connect(backend.conninfo) as conn:
        conn.execute(statement)


#: What a database refuses with, on each side (the connection's own errors).
REFUSED = (sqlite3.DatabaseError, psycopg.Error)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET actor_name = 'someone else'",
        "UPDATE audit_records SET after = NULL WHERE action = 'credential.created'",
        "DELETE FROM audit_records",
        "DELETE FROM audit_records WHERE action = 'credential.created'",
    ],
)
async def test_no_statement_changes_or_deletes_a_record(
    store: SQLStore, backend: Backend, clock: FakeClock, statement: str
) -> None:
    await store.append_audit(record("credential.created", after={"name": "api"}))
    clock.advance(400 * 86_400)  # old enough for any retention: still not deletable by hand
    with pytest.raises(REFUSED) as refused:
        _sql(backend, statement)
    assert "append-only" in str(refused.value)
    (kept,) = (await store.list_audit()).items
    assert (kept.actor.name, kept.after) == ("ada@example.org", {"name": "api"})


async def test_truncate_is_refused_too(store: SQLStore, backend: Backend) -> None:
    if backend.conninfo is None:
        pytest.skip("SQLite has no TRUNCATE: its DELETE without WHERE is refused above")
    await store.append_audit(record("project.updated"))
    with pytest.raises(psycopg.Error) as refused:
        _sql(backend, "TRUNCATE audit_records")
    assert "append-only" in str(refused.value)
    assert len((await store.list_audit()).items) == 1


async def test_the_sweep_deletes_only_what_is_past_its_cutoff(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    await store.create_project(Project(id="p1", name="kept"))
    start = clock.now()
    for action in ("workflow.created", "workflow.updated", "workflow.deleted"):
        await store.append_audit(record(action))
    await store.append_audit(record("sign_in.failed", project_id=None))
    await store.append_audit(record("project.updated", project_id="gone"))  # a deleted project
    clock.advance(86_400)
    await store.append_audit(record("workflow.created", target=Target("workflow", "w2")))
    cutoff = start + timedelta(hours=1)

    assert await store.sweep_audit("p1", cutoff, limit=2) == 2
    assert await store.sweep_audit("p1", cutoff, limit=2) == 1
    assert await store.sweep_audit("p1", cutoff) == 0
    assert await listed(store, project_id="p1") == ["workflow.created:w2"]
    assert len(await listed(store)) == 3  # the instance's and the deleted project's wait
    assert await store.sweep_audit(None, cutoff) == 2
    assert await listed(store) == ["workflow.created:w2"]
    # the sweep's leave ended with its transaction: by hand, still refused
    with pytest.raises(REFUSED):
        _sql(backend, "DELETE FROM audit_records")
    with pytest.raises(InputError):
        await store.sweep_audit("p1", cutoff, limit=0)


async def test_a_change_and_its_record_are_committed_together(store: SQLStore) -> None:
    async with store.together():
        made = await store.create_project(Project(id="p1", name="together"))
        await store.append_audit(
            record("project.created", target=Target("project", made.id, made.name))
        )
    assert (await store.get_project("p1")).name == "together"
    assert await listed(store, project_id="p1") == ["project.created:p1"]


async def test_each_filter_lists_what_the_whole_trail_filtered_gives(
    store: SQLStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing filtered on a target, an actor, an action or a project (read through that
    filter's index, store/audit.py) gives what filtering every record gives: the other
    filters still apply, an actor by id or by name in any case, a noun its codes, a code the
    codes under it, and pages follow each other. So does a start time alone, whether the
    newest records hold its page or the records since then are read (a probe of three)."""
    monkeypatch.setattr(audit, "SINCE_PROBE", 3)
    eve = Actor("anonymous", "", "Eve@example.org", "203.0.113.9")
    made = [
        ("workflow.created", ADA, "p1", NIGHTLY),
        ("sign_in.failed", eve, None, Target("session", "")),
        ("workflow.updated", BOT, "p1", NIGHTLY),
        ("sign_in.succeeded", ADA, None, Target("session", "")),
        ("credential.oauth2.refreshed", BOT, "p2", Target("credential", "c1")),
        ("workflows.exported", ADA, "p2", NIGHTLY),
        ("credential.created", ADA, "p2", Target("credential", "c1")),
        ("workflow.updated", ADA, "p2", Target("workflow", "w2")),
        ("sign_in.failed", eve, None, Target("session", "")),
    ]
    start = clock.now()
    for action, actor, project, target in made:
        await store.append_audit(record(action, actor=actor, project_id=project, target=target))
        clock.advance(60)
    everything = (await store.list_audit(limit=100)).items

    def matches(r: AuditRecord, where: AuditFilter) -> bool:
        code, who = where.action, where.actor
        return (
            (where.project_id is None or r.project_id == where.project_id)
            and (who is None or who == r.actor.id or who.lower() == r.actor.name.lower())
            and (code is None or r.action == code or r.action.startswith(f"{code}."))
            and (where.target is None or r.target.id == where.target)
            and (where.since is None or r.at >= where.since)
            and (where.until is None or r.at < where.until)
        )

    for where in (
        AuditFilter(target="c1"),
        AuditFilter(target="w1", actor="t9"),
        AuditFilter(actor="eve@EXAMPLE.org"),
        AuditFilter(actor="u1", project_id="p2"),
        AuditFilter(actor="deploy bot", action="credential"),
        AuditFilter(action="sign_in.failed"),
        AuditFilter(action="sign_in"),
        AuditFilter(action="credential.oauth2"),
        AuditFilter(action="credential.oauth2.refreshed"),
        AuditFilter(action="workflow", project_id="p2"),
        AuditFilter(action="workflow", since=start + timedelta(minutes=4)),
        AuditFilter(project_id="p1"),
        AuditFilter(project_id="p2", target="w1"),
        AuditFilter(target="nothing"),
        AuditFilter(since=start),
        AuditFilter(since=start + timedelta(minutes=7)),
        AuditFilter(since=start + timedelta(minutes=2), until=start + timedelta(minutes=4)),
        AuditFilter(until=start + timedelta(minutes=3)),
    ):
        seen, cursor = [], None
        while True:
            page = await store.list_audit(where, cursor=cursor, limit=2)
            seen += [r.seq for r in page.items]
            if (cursor := page.next_cursor) is None:
                break
        expected = [r.seq for r in everything if matches(r, where)]
        assert seen == expected, where
        assert expected or where.target == "nothing", where


async def test_the_instance_sweep_takes_the_instances_and_deleted_projects_records(
    store: SQLStore, clock: FakeClock
) -> None:
    """The instance's batch takes the records past the cutoff of no project and of every
    project that no longer exists, a batch at a time, and never a kept project's."""
    await store.create_project(Project(id="kept", name="kept"))
    for project in (None, "gone1", "kept", "gone2", None, "gone1"):
        await store.append_audit(record("project.updated", project_id=project))
    clock.advance(86_400)
    await store.append_audit(record("project.updated", project_id="gone1"))  # too new
    cutoff = clock.now() - timedelta(hours=1)
    assert [await store.sweep_audit(None, cutoff, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    left = [r.project_id for r in (await store.list_audit()).items]
    assert left == ["gone1", "kept"]
