"""Migrations on both dialects: a database that holds data is upgraded, and the databases that
must not be opened are refused with a reason (store/migrations.py).

The upgrade starts from a database as the first release left it: schema file 0001 only, a
``schema_version`` table without checksums, and a finished run with its steps and log lines,
written with that release's column layout. Whatever files come after 0001 today, opening it
must keep every row readable through the store and let new runs be made.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from psycopg.types.json import Jsonb

from fulmen.errors import StoreError
from fulmen.lifecycle import RunState
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    AlertRule,
    AuditFilter,
    ChannelType,
    DataclipType,
    EnqueueRequest,
    NewAlertChannel,
    NewDataclip,
    RunCompletion,
    open_store,
    sqlite_path,
)
from fulmen.store.alert_policy import DEFAULT_OUTCOMES
from fulmen.store.migrations import Applied, SchemaFile, plan
from fulmen.store.queries import load_schema

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

#: A workflow document as the first release stored it: no retry policy, no cron cursor.
DOCUMENT = {
    "id": "w",
    "project_id": "p",
    "name": "nightly",
    "concurrency": None,
    "jobs": [{"id": "j", "name": "fetch", "body": "x = 1", "adaptor": "common"}],
    "triggers": [
        {
            "id": "t",
            "type": "webhook",
            "enabled": True,
            "cron_expression": None,
            "timezone": None,
            "webhook_reply": None,
        }
    ],
    "edges": [
        {
            "id": "e",
            "source_trigger_id": "t",
            "source_job_id": None,
            "target_job_id": "j",
            "condition": "always",
            "enabled": True,
        }
    ],
}

JSON_COLUMNS = {"document", "body", "request", "options"}

#: The first release's rows, table by table, in an order that satisfies the foreign keys.
ROWS: list[tuple[str, dict[str, Any]]] = [
    ("projects", {"id": "p", "name": "Clinic", "inserted_at": T0, "updated_at": T0}),
    (
        "workflows",
        {
            "id": "w",
            "project_id": "p",
            "name": "nightly",
            "lock_version": 1,
            "inserted_at": T0,
            "updated_at": T0,
        },
    ),
    (
        "workflow_snapshots",
        {"id": "s", "workflow_id": "w", "version": 1, "document": DOCUMENT, "inserted_at": T0},
    ),
    ("triggers", {"id": "t", "workflow_id": "w", "type": "webhook", "enabled": True}),
    (
        "jobs",
        {"id": "j", "workflow_id": "w", "project_id": "p", "name": "fetch", "body": "x = 1"}
        | {"adaptor": "common"},
    ),
    (
        "edges",
        {"id": "e", "workflow_id": "w", "source_trigger_id": "t", "target_job_id": "j"}
        | {"condition": "always", "enabled": True},
    ),
    (
        "dataclips",
        {"id": "d-in", "project_id": "p", "type": "http_request", "body": {"n": 1}}
        | {"inserted_at": T0},
    ),
    (
        "dataclips",
        {"id": "d-out", "project_id": "p", "type": "step_result", "body": {"n": 2}}
        | {"inserted_at": T0 + timedelta(seconds=2)},
    ),
    (
        "work_orders",
        {"id": "wo", "workflow_id": "w", "trigger_id": "t", "dataclip_id": "d-in"}
        | {"inserted_at": T0},
    ),
    (
        "runs",
        {
            "id": "r",
            "work_order_id": "wo",
            "workflow_id": "w",
            "project_id": "p",
            "snapshot_id": "s",
            "dataclip_id": "d-in",
            "starting_node_id": "t",
            "state": "success",
            "queue": "default",
            "priority": 0,
            "options": {"run_timeout_ms": 60000},
            "worker_name": "worker-1",
            "final_dataclip_id": "d-out",
            "inserted_at": T0,
            "claimed_at": T0 + timedelta(milliseconds=10),
            "joined_at": T0 + timedelta(milliseconds=20),
            "started_at": T0 + timedelta(milliseconds=30),
            "finished_at": T0 + timedelta(seconds=3),
        },
    ),
    (
        "steps",
        {
            "id": "st",
            "run_id": "r",
            "job_id": "j",
            "input_dataclip_id": "d-in",
            "output_dataclip_id": "d-out",
            "exit_reason": "success",
            "started_at": T0 + timedelta(seconds=1),
            "finished_at": T0 + timedelta(seconds=2),
        },
    ),
    *(
        (
            "log_lines",
            {
                "run_id": "r",
                "step_id": "st",
                "source": "JOB",
                "level": "info",
                "message": f"line {i}",
                "logged_at": T0 + timedelta(seconds=1, milliseconds=i),
            },
        )
        for i in range(3)
    ),
]


def write_first_release(backend: Backend) -> None:
    """The database as the first release left it, holding ROWS."""
    write_release(backend, 1, ROWS)


def write_release(backend: Backend, version: int, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """The database as the release with schema files up to ``version`` left it (without
    checksums, as the first release recorded them), holding ``rows``."""
    files = [file for file in load_schema(backend.name) if file.version <= version]
    assert [file.version for file in files] == list(range(1, version + 1))
    with _raw(backend) as execute:
        if backend.name == "sqlite":
            execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
        else:
            execute(
                "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for file in files:
            execute(file.script)
            execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                (file.version, file.name, "2026-03-01 09:00:00"),
            )
        for table, row in rows:
            columns = ", ".join(row)
            marks = ", ".join("%s" for _ in row)
            values = tuple(_value(backend, column, value) for column, value in row.items())
            execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)


async def test_a_database_holding_runs_is_upgraded_and_keeps_every_row(
    backend: Backend,
) -> None:
    write_first_release(backend)
    async with await open_store(backend.url, credential_key=KEY) as store:
        detail = await store.get_run("r")
        assert detail.run.state is RunState.SUCCESS
        assert [step.id for step in detail.steps] == ["st"]
        logs = await store.get_logs("r")
        assert [line.message for line in logs.items] == ["line 0", "line 1", "line 2"]
        plan_json = await store.get_plan("r")
        assert [job["id"] for job in plan_json["jobs"]] == ["j"]
        project = await store.get_project("p")
        assert project.name == "Clinic"
        stored = await store.get_workflow("w")
        assert [job.id for job in stored.workflow.jobs] == ["j"]
        assert stored.workflow.retry.max_retries == 0  # 0003's default for existing rows
    with _raw(backend) as execute:
        versions = execute("SELECT version, checksum FROM schema_version ORDER BY version")
    assert [v for v, _ in versions] == [file.version for file in load_schema(backend.name)]
    assert all(checksum for _, checksum in versions)


#: Issue 15: jobs saved before jobs had a language. Every one ran as Python, Lightning's
#: adaptor names standing for Fulmen's Python adaptors, so they must stay Python.
LEGACY_JOBS = [
    {"id": "j", "name": "fetch", "body": "get('/patients')"}
    | {"adaptor": "@openfn/language-http@6.5.1", "credential_id": None},
    {"id": "k", "name": "count", "body": "fn(lambda s: s)"}
    | {"adaptor": "@openfn/language-common@2.1.1", "credential_id": None},
]
#: The document of a workflow of those jobs: the webhook runs fetch, then count.
LEGACY_DOCUMENT = {
    **DOCUMENT,
    "jobs": LEGACY_JOBS,
    "edges": [
        *DOCUMENT["edges"],
        {"id": "e2", "source_trigger_id": None, "source_job_id": "j"}
        | {"target_job_id": "k", "condition": "on_job_success", "enabled": True},
    ],
}


def legacy_rows() -> list[tuple[str, dict[str, Any]]]:
    """ROWS, with LEGACY_JOBS for the workflow's jobs and its snapshot's."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for table, row in ROWS:
        if table == "workflow_snapshots":
            rows.append((table, {**row, "document": LEGACY_DOCUMENT}))
        elif table == "jobs":
            rows += [
                ("jobs", {"workflow_id": "w", "project_id": "p", **job}) for job in LEGACY_JOBS
            ]
        else:
            rows.append((table, row))
    return rows


async def test_jobs_saved_before_languages_stay_python_whatever_their_adaptor(
    backend: Backend,
) -> None:
    write_release(backend, 7, legacy_rows())
    async with await open_store(backend.url, credential_key=KEY) as store:
        stored = await store.get_workflow("w")
        expected = [(job["adaptor"], "python") for job in LEGACY_JOBS]
        assert [(job.adaptor, job.language) for job in stored.workflow.jobs] == expected
        snapshot = await store.get_snapshot("s")
        assert [(job.adaptor, job.language) for job in snapshot.workflow.jobs] == expected
        # a run of the old version, retried or not, is still handed out as Python
        plan_json = await store.get_plan("r")
        assert [(job["adaptor"], job["language"]) for job in plan_json["jobs"]] == expected
        # and saving the workflow again keeps them Python
        again = await store.replace_workflow(stored.workflow, expected_version=1)
        assert [job.language for job in again.workflow.jobs] == ["python", "python"]
    with _raw(backend) as execute:
        rows = execute("SELECT id, language FROM jobs ORDER BY id")
        document = execute("SELECT document FROM workflow_snapshots WHERE id = %s", ("s",))
    assert [tuple(row) for row in rows] == [("j", "python"), ("k", "python")]
    stored_document = document[0][0]
    if isinstance(stored_document, str):
        stored_document = orjson.loads(stored_document)
    assert [job["id"] for job in stored_document["jobs"]] == ["j", "k"]  # in order
    assert [job["language"] for job in stored_document["jobs"]] == ["python", "python"]


async def test_runs_of_a_version_with_javascript_need_it_after_the_upgrade(
    backend: Backend,
) -> None:
    """0009: a run says which languages it needs, for the claim to route it; runs made
    before are worked out from their version's jobs (0008 gave every job a language)."""
    scripted = [
        {**LEGACY_JOBS[0], "language": "javascript"},
        {**LEGACY_JOBS[1], "language": "python"},
    ]
    rows = [
        (table, {**row, "document": {**LEGACY_DOCUMENT, "jobs": scripted}})
        if table == "workflow_snapshots"
        else (table, row)
        for table, row in legacy_rows()
    ]
    write_release(backend, 8, rows)
    async with await open_store(backend.url, credential_key=KEY) as store:
        assert (await store.get_run("r")).run.languages == ("python", "javascript")
    with _raw(backend) as execute:
        [(mask,)] = execute("SELECT languages FROM runs WHERE id = %s", ("r",))
    assert mask == 3


async def test_jobs_saved_before_requirements_have_none_and_can_be_pinned_after_the_upgrade(
    backend: Backend,
) -> None:
    """0010: a job's requirements (issue 16). Jobs and snapshots saved before have none; the
    runs of those versions are handed out as before, and a save after the upgrade keeps its
    pins in the job's row and its version's document."""
    rows = [
        (table, {**row, "document": {**LEGACY_DOCUMENT, "jobs": SCRIPTED_JOBS}})
        if table == "workflow_snapshots"
        else (table, row)
        for table, row in legacy_rows()
    ]
    write_release(backend, 9, rows)
    async with await open_store(backend.url, credential_key=KEY) as store:
        stored = await store.get_workflow("w")
        assert [job.requirements for job in stored.workflow.jobs] == [(), ()]
        plan_json = await store.get_plan("r")
        assert ["requirements" in job for job in plan_json["jobs"]] == [False, False]
        pinned = replace(
            stored.workflow,
            jobs=(
                replace(stored.workflow.jobs[0], adaptor="fulmen-probe@2.0.0"),
                replace(stored.workflow.jobs[1], requirements=("httpx==0.28.1",)),
            ),
        )
        again = await store.replace_workflow(pinned, expected_version=1)
        assert [job.requirements for job in again.workflow.jobs] == [(), ("httpx==0.28.1",)]
        assert (await store.get_plan("r"))["jobs"] == plan_json["jobs"]  # its version's
    with _raw(backend) as execute:
        found = execute("SELECT id, adaptor, requirements FROM jobs ORDER BY id")
        [(document,)] = execute(
            "SELECT document FROM workflow_snapshots WHERE version = 2 AND workflow_id = %s",
            ("w",),
        )
    assert [(i, adaptor, _decoded(value)) for i, adaptor, value in found] == [
        ("j", "fulmen-probe@2.0.0", []),
        ("k", "@openfn/language-common@2.1.1", ["httpx==0.28.1"]),
    ]
    jobs = _decoded(document)["jobs"]
    assert [job["requirements"] for job in jobs] == [[], ["httpx==0.28.1"]]


async def test_a_database_from_before_alerts_alerts_on_what_ends_after_the_upgrade(
    backend: Backend,
) -> None:
    """0013: alerts (issue 18). A database at 0012 holding a finished run gets the alert
    tables empty: no rule, so nothing alerts; with a rule, a run that fails after the upgrade
    is folded into an alert through the new channel, and the old run never is."""
    write_release(backend, 12, ROWS)
    async with await open_store(backend.url, credential_key=KEY) as store:
        assert await store.get_alert_rule("p", "w") is None
        assert (await store.get_alert_digest("p")).frequency == "off"
        channel = await store.create_alert_channel(
            NewAlertChannel("mail", "p", "ops", ChannelType.EMAIL, ("ops@example.org",))
        )
        await store.put_alert_rule(AlertRule("w", "p", DEFAULT_OUTCOMES, (channel.id,)))
        assert await store.fold_alerts() == []  # the run from before ended well, and before
        made = await store.enqueue(
            EnqueueRequest("w", input=NewDataclip(DataclipType.HTTP_REQUEST, {}))
        )
        [claimed] = await store.claim(1, ["*"], "w1")
        await store.start_run(claimed.id)
        await store.complete_run(claimed.id, RunCompletion(ExitReason(Reason.FAIL, "E")))
        [alert] = await store.fold_alerts()
        assert alert.body["first_run_id"] == made.run_id
        assert [d.channel_id for d in await store.list_alert_deliveries("p")] == ["mail"]


async def test_runs_ended_before_the_upgrade_are_counted_and_later_endings_added(
    backend: Backend,
) -> None:
    """0019: runs ended per final state (``fulmen_runs_ended_total``), counted as runs end. A
    database at 0018 holding a finished run counts it from the upgrade on."""
    write_release(backend, 18, ROWS)
    async with await open_store(backend.url, credential_key=KEY) as store:
        assert await store.run_endings() == {"success": 1}
        await store.enqueue(EnqueueRequest("w", input=NewDataclip(DataclipType.HTTP_REQUEST, {})))
        [claimed] = await store.claim(1, ["*"], "w1")
        await store.start_run(claimed.id)
        await store.complete_run(claimed.id, RunCompletion(ExitReason(Reason.FAIL, "E")))
        assert await store.run_endings() == {"success": 1, "failed": 1}


async def test_the_audit_records_before_the_upgrade_are_found_by_each_filter(
    backend: Backend,
) -> None:
    """0021: the trail's indexes of actor names, action nouns and codes, and of each
    project's records by time (store/audit.py), built over the records already kept: a
    database at 0020 finds its records by each filter, and its sweep takes them."""
    trail = {
        "at": T0,
        "actor_kind": "user",
        "actor_id": "u1",
        "actor_name": "Ada@example.org",
        "action": "workflow.updated",
        "project_id": "p",
        "target_type": "workflow",
        "target_id": "w",
    }
    write_release(backend, 20, [*ROWS, ("audit_records", trail)])
    async with await open_store(backend.url, credential_key=KEY) as store:
        for where in (
            AuditFilter(actor="ada@example.org"),
            AuditFilter(action="workflow"),
            AuditFilter(action="workflow.updated"),
            AuditFilter(project_id="p", target="w"),
        ):
            [found] = (await store.list_audit(where)).items
            assert (found.action, found.at) == ("workflow.updated", T0), where
        assert await store.sweep_audit("p", T0 + timedelta(days=1)) == 1


#: LEGACY_JOBS as 0008 left them: each says its language.
SCRIPTED_JOBS = [{**job, "language": "python"} for job in LEGACY_JOBS]


def _decoded(value: Any) -> Any:
    """A JSON column as the driver gives it: text from SQLite, decoded from PostgreSQL."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def test_a_schema_file_edited_after_it_was_applied_is_refused(backend: Backend) -> None:
    await (await open_store(backend.url)).close()
    with _raw(backend) as execute:
        execute("UPDATE schema_version SET checksum = %s WHERE version = 1", ("0" * 64,))
    with pytest.raises(StoreError) as refused:
        await open_store(backend.url)
    assert refused.value.code == "schema_changed"
    assert "0001_initial.sql" in refused.value.message


async def test_a_database_from_a_newer_fulmen_is_refused(backend: Backend) -> None:
    await (await open_store(backend.url)).close()
    with _raw(backend) as execute:
        execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (999, %s, %s)",
            ("0999_future.sql", "2027-01-01 00:00:00"),
        )
    with pytest.raises(StoreError) as refused:
        await open_store(backend.url)
    assert refused.value.code == "schema_newer"
    assert "upgrade Fulmen" in refused.value.message


async def test_rows_applied_before_checksums_get_theirs_on_the_next_open(
    backend: Backend,
) -> None:
    await (await open_store(backend.url)).close()
    with _raw(backend) as execute:
        execute("UPDATE schema_version SET checksum = NULL")
    await (await open_store(backend.url)).close()
    with _raw(backend) as execute:
        rows = execute("SELECT version, checksum FROM schema_version ORDER BY version")
    expected = {file.version: file.checksum for file in load_schema(backend.name)}
    assert dict(rows) == expected


# -- the decision alone ----------------------------------------------------------------------

FILES = [SchemaFile(1, "0001_a.sql", "CREATE TABLE a (x int);"), SchemaFile(2, "0002_b.sql", "")]


def test_a_new_database_gets_every_file() -> None:
    assert plan([], FILES, where="db").apply == tuple(FILES)


def test_a_renamed_file_is_refused_like_an_edited_one() -> None:
    with pytest.raises(StoreError, match=r"0001_a\.sql"):
        plan([Applied(1, "0001_other.sql", FILES[0].checksum)], FILES, where="db")


def test_an_up_to_date_database_needs_nothing() -> None:
    applied = [Applied(file.version, file.name, file.checksum) for file in FILES]
    todo = plan(applied, FILES, where="db")
    assert (todo.apply, todo.record_checksums) == ((), ())


# -- raw access, as the first release's code would have written -------------------------------


@contextmanager
def _raw(backend: Backend) -> Iterator[Any]:
    """An ``execute(sql, params)`` returning the rows, in %s style on both dialects."""
    if backend.name == "sqlite":
        conn = sqlite3.connect(sqlite_path(backend.url), isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")

        def execute_sqlite(statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
            statement = statement.replace("%s", "?")
            if not params and ";" in statement.strip().rstrip(";"):
                conn.executescript(statement)
                return []
            return conn.execute(statement, params).fetchall()

        try:
            yield execute_sqlite
        finally:
            conn.close()
        return
    assert backend.conninfo is not None
    with psycopg.connect(backend.conninfo, autocommit=True) as pg:

        def execute_pg(statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
            cursor = pg.execute(statement.encode() if not params else statement, params or None)
            return cursor.fetchall() if cursor.description else []

        yield execute_pg


def _value(backend: Backend, column: str, value: Any) -> Any:
    if backend.name == "sqlite":
        if isinstance(value, datetime):
            return int(value.timestamp() * 1_000_000)
        if column in JSON_COLUMNS:
            return _json(value)
        if isinstance(value, bool):
            return int(value)
        return value
    if column in JSON_COLUMNS:
        return Jsonb(value)
    return value


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def test_bodies_stored_before_the_upgrade_are_sized_for_the_bounded_batches(
    backend: Backend,
) -> None:
    """0020: the bytes of each dataclip's body, each collection item's value and each run's
    log, which the batches that wipe and delete them sum (store/batches.py). A database at
    0019 gets them for what it holds: the sweep then wipes its old bodies as many as fit a
    batch."""
    value = "é" * 10  # 20 bytes in UTF-8
    collection = {"id": "c1", "project_id": "p", "name": "patients", "item_count": 1}
    item = {"collection_id": "c1", "key": "k", "value": value}
    rows = [
        *ROWS,
        ("collections", collection | {"inserted_at": T0, "updated_at": T0}),
        ("collection_items", item | {"inserted_at": T0, "updated_at": T0}),
        ("log_heads", {"run_id": "r", "digest": b"\x01" * 16}),
    ]
    write_release(backend, 19, rows)
    async with await open_store(backend.url, credential_key=KEY) as store:
        await store.replace_project(
            replace(await store.get_project("p"), dataclip_retention_period=1)
        )
        with _raw(backend) as execute:
            sizes = dict(execute("SELECT id, body_bytes FROM dataclips"))
            [(value_bytes,)] = execute("SELECT value_bytes FROM collection_items")
            [(log_bytes,)] = execute("SELECT bytes FROM log_heads")
        assert set(sizes) == {"d-in", "d-out"} and min(sizes.values()) >= len('{"n":1}')
        assert value_bytes == 20
        assert log_bytes == len("line 0") * 3
        # the body of the run's input alone fits 8 bytes; both do not
        assert (await store.sweep_retention("p", max_bytes=8)).wiped_dataclips == 1
        assert (await store.sweep_retention("p", max_bytes=8)).wiped_dataclips == 1
        assert not (await store.sweep_retention("p")).more
