"""The Store conformance suite: every test runs on SQLite and on PostgreSQL (STYLE.md P8).

Assertions are on what the Store gives back (and, for credentials, on the raw database), never
on private state. Time is the FakeClock's; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import psycopg
import pytest

from fulmen.errors import (
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    PlanError,
    TransitionError,
)
from fulmen.lifecycle import CancelAction, RunState, StepState
from fulmen.plan import JAVASCRIPT, LANGUAGES, ON_JOB_SUCCESS, PYTHON, Edge, Job, Options, Plan
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    CronCursor,
    CronTick,
    DataclipType,
    Enqueued,
    EnqueueRequest,
    LogLine,
    NewCredential,
    NewDataclip,
    NewWebhookAuthMethod,
    Priority,
    Project,
    RerunRequest,
    RetentionPolicy,
    RetryPolicy,
    Run,
    RunCompletion,
    RunFilter,
    SQLStore,
    StepCompletion,
    StepStart,
    TriggerType,
    WebhookAuthType,
    Workflow,
    WorkflowTrigger,
    catalog,
    open_store,
    reads,
    sqlite_path,
)
from fulmen.store.db import Tx
from fulmen.store.queries import load_queries, load_schema, parse_queries
from fulmen_testing.clock import FakeClock
from fulmen_testing.spies import noting_results

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

SECRET = "hunter2-d0-not-leak"
#: A credential's field name nothing else in the database holds (the schema says "password").
FIELD = "pass-phrase-d0-not-leak"
SUCCESS = ExitReason(Reason.SUCCESS)
PY = PYTHON


# -- helpers -------------------------------------------------------------------------------


def workflow(**changes: object) -> Workflow:
    """Project p's workflow w: webhook t -> j1 (uses credential c) -> j2 on success."""
    base = Workflow(
        id="w",
        project_id="p",
        name="sync patients",
        jobs=(
            Job(id="j1", body="get('/patients')", adaptor="http", credential_id="c", language=PY),
            Job(id="j2", name="count", body="fn(count)", adaptor="common", language=PY),
        ),
        triggers=(WorkflowTrigger(id="t"),),
        edges=(
            Edge(id="e1", source_trigger_id="t", target_job_id="j1"),
            Edge(id="e2", source_job_id="j1", target_job_id="j2", condition=ON_JOB_SUCCESS),
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def seed(store: SQLStore) -> None:
    await store.create_project(Project(id="p", name="Clinic"))
    await store.put_credential(
        NewCredential(id="c", project_id="p", name="api", body={FIELD: SECRET})
    )
    await store.create_workflow(workflow())


def webhook(body: object = None, **changes: object) -> EnqueueRequest:
    request = EnqueueRequest(
        workflow_id="w",
        input=NewDataclip(DataclipType.HTTP_REQUEST, body if body is not None else {"n": 1}),
        trigger_id="t",
        options=Options(run_timeout_ms=60_000),
    )
    return replace(request, **changes)  # type: ignore[arg-type]


async def enqueue_many(store: SQLStore, count: int, **changes: object) -> list[str]:
    return [(await store.enqueue(webhook({"i": i}, **changes))).run_id for i in range(count)]


async def claimed_run(store: SQLStore, **changes: object) -> str:
    run_id = (await store.enqueue(webhook(**changes))).run_id
    [claimed] = await store.claim(1, ["*"], "worker-1")
    assert claimed.id == run_id
    return run_id


async def started_run(store: SQLStore, **changes: object) -> str:
    run_id = await claimed_run(store, **changes)
    await store.join_run(run_id)
    await store.start_run(run_id)
    return run_id


async def state_of(store: SQLStore, run_id: str) -> RunState:
    return (await store.get_run(run_id)).run.state


def log(message: str, clock: FakeClock, **changes: object) -> LogLine:
    return replace(LogLine(message=message, timestamp=clock.now()), **changes)  # type: ignore[arg-type]


# -- projects ------------------------------------------------------------------------------


async def test_project_crud(store: SQLStore, clock: FakeClock) -> None:
    created = await store.create_project(Project(id="p", name="Clinic", concurrency=3))
    assert (created.name, created.concurrency, created.inserted_at) == ("Clinic", 3, clock.now())
    assert await store.get_project("p") == created
    with pytest.raises(ConflictError):
        await store.create_project(Project(id="p", name="Again"))

    clock.advance(seconds=5)
    replaced = await store.replace_project(Project(id="p", name="Clinic 2"))
    assert (replaced.name, replaced.concurrency) == ("Clinic 2", None)
    assert (replaced.inserted_at, replaced.updated_at) == (created.inserted_at, clock.now())

    await store.delete_project("p")
    for call in (
        store.get_project("p"),
        store.delete_project("p"),
        store.replace_project(Project(id="p", name="x")),
    ):
        with pytest.raises(NotFoundError):
            await call


async def test_deleting_a_project_takes_its_whole_history(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    made = await store.enqueue(webhook())
    await store.claim(1)
    await store.start_run(made.run_id)
    await store.start_step(made.run_id, StepStart("s1", "j1", made.dataclip_id))
    await store.append_log(made.run_id, log("x", clock, step_id="s1"))
    await store.complete_step(made.run_id, StepCompletion("s1", SUCCESS, "out", {"a": 1}))
    await store.complete_run(made.run_id, RunCompletion(SUCCESS, "out"))
    await store.delete_project("p")
    for call in (
        store.get_run(made.run_id),
        store.get_dataclip("out"),
        store.get_credential_body("c"),
        store.get_work_order(made.work_order_id),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert (await store.list_runs()).items == ()


async def test_projects_are_listed_a_page_at_a_time(store: SQLStore) -> None:
    for name in ("c", "a", "e", "b", "d"):
        await store.create_project(Project(id=name, name=name.upper()))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_projects(cursor=cursor, limit=2)
        seen += [project.id for project in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["a", "b", "c", "d", "e"]
    with pytest.raises(InputError):
        await store.list_projects(cursor="not-a-cursor")
    with pytest.raises(InputError):
        await store.list_projects(limit=0)


# -- workflows -----------------------------------------------------------------------------


async def test_a_workflow_is_saved_whole_with_a_snapshot_per_save(store: SQLStore) -> None:
    await seed(store)
    first = await store.get_workflow("w")
    assert first.workflow == workflow()
    assert first.version == 1

    changed = workflow(
        name="v2", jobs=(*workflow().jobs[:1], Job(id="j2", body="x", adaptor="a", language=PY))
    )
    second = await store.replace_workflow(changed, expected_version=1)
    assert (second.version, second.workflow) == (2, changed)
    assert second.snapshot_id != first.snapshot_id
    # The first snapshot still says what version 1 was: runs made from it ran that.
    old = await store.get_snapshot(first.snapshot_id)
    assert (old.version, old.workflow) == (1, workflow())
    assert (await store.get_snapshot(second.snapshot_id)).workflow == changed


async def test_a_stale_save_is_refused_and_changes_nothing(store: SQLStore) -> None:
    await seed(store)
    await store.replace_workflow(workflow(name="theirs"), expected_version=1)
    with pytest.raises(ConflictError) as info:
        await store.replace_workflow(workflow(name="mine"), expected_version=1)
    assert info.value.code == "stale_version"
    current = await store.get_workflow("w")
    assert (current.version, current.workflow.name) == (2, "theirs")


async def test_workflows_are_listed_deleted_and_their_triggers_found(store: SQLStore) -> None:
    await seed(store)
    cron = WorkflowTrigger(id="t2", type=TriggerType.CRON, cron_expression="0 * * * *")
    await store.create_workflow(
        workflow(id="w2", triggers=(cron,), jobs=(Job(id="k", body="", adaptor="a"),), edges=())
    )
    page = await store.list_workflows("p", limit=1)
    assert [w.workflow.id for w in page.items] == ["w"]
    rest = await store.list_workflows("p", cursor=page.next_cursor)
    assert [w.workflow.id for w in rest.items] == ["w2"] and rest.next_cursor is None

    found = await store.get_trigger("t2")
    assert (found.trigger, found.workflow_id, found.project_id) == (cron, "w2", "p")

    run_id = (await store.enqueue(webhook())).run_id
    await store.delete_workflow("w")
    for call in (store.get_workflow("w"), store.get_run(run_id), store.get_trigger("t")):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(NotFoundError):
        await store.delete_workflow("w")


async def test_what_cannot_be_saved_is_refused(store: SQLStore) -> None:
    await seed(store)
    await store.create_project(Project(id="q", name="Other"))
    await store.put_credential(NewCredential(id="cq", project_id="q", name="x", body={}))
    j2 = workflow().jobs[1]
    cases: list[tuple[type[Exception], Workflow]] = [
        (NotFoundError, workflow(id="w9", project_id="nope")),
        # A job id another workflow has.
        (ConflictError, workflow(id="w9", triggers=(), edges=())),
        # A credential of another project.
        (NotFoundError, workflow(jobs=(Job("j1", "", "a", credential_id="cq"), j2))),
        (PlanError, workflow(edges=(*workflow().edges, Edge("e3", "j1", source_job_id="j2")))),
        (InputError, workflow(jobs=(Job("j1", "", "a", credential={"k": 1}), j2))),
        (InputError, workflow(triggers=(WorkflowTrigger(id="t", type=TriggerType.CRON),))),
    ]
    for error, bad in cases:
        with pytest.raises(error):
            if bad.id == "w":
                await store.replace_workflow(bad)
            else:
                await store.create_workflow(bad)
    assert (await store.get_workflow("w")).version == 1


async def test_jobs_removed_from_a_workflow_no_longer_hold_their_credential(
    store: SQLStore,
) -> None:
    await seed(store)
    with pytest.raises(ConflictError, match="j1"):
        await store.delete_credential("c")
    await store.replace_workflow(workflow(jobs=(workflow().jobs[1],), edges=()))
    await store.delete_credential("c")
    assert await store.list_credentials("p") == []


# -- credentials ---------------------------------------------------------------------------


async def test_credential_crud_never_lists_values(store: SQLStore, clock: FakeClock) -> None:
    await store.create_project(Project(id="p", name="Clinic"))
    info = await store.put_credential(
        NewCredential(id="c", project_id="p", name="api", body={"password": SECRET})
    )
    assert (info.id, info.name, info.inserted_at) == ("c", "api", clock.now())
    assert await store.get_credential_body("c") == {"password": SECRET}
    clock.advance(seconds=1)
    await store.put_credential(
        NewCredential(id="c", project_id="p", name="api2", body={"token": "t"})
    )
    [listed] = await store.list_credentials("p")
    assert (listed.name, listed.updated_at) == ("api2", clock.now())
    assert SECRET not in repr(listed)
    assert await store.get_credential_body("c") == {"token": "t"}

    await store.create_project(Project(id="q", name="Other"))
    with pytest.raises(ConflictError):
        await store.put_credential(NewCredential(id="c", project_id="q", name="x", body={}))
    await store.delete_credential("c")
    with pytest.raises(NotFoundError):
        await store.get_credential_body("c")


async def test_credentials_are_encrypted_at_rest(store: SQLStore, backend: Backend) -> None:
    await seed(store)
    if backend.name == "sqlite":
        await store.close()  # flush everything to the files
        folder = sqlite_path(backend.url).parent
        raw = b"".join(path.read_bytes() for path in folder.iterdir() if path.is_file())
        assert b"Clinic" in raw  # the files hold the data in the clear…
        assert SECRET.encode() not in raw and FIELD.encode() not in raw  # …but not credentials
    else:
        assert backend.conninfo is not None
        with psycopg.connect(backend.conninfo) as conn:
            rows = conn.execute("SELECT c::text, sealed_body FROM credentials c").fetchall()
        assert rows and all(
            SECRET not in text and SECRET.encode() not in bytes(sealed) for text, sealed in rows
        )


async def test_a_wrong_or_missing_key_is_a_clear_error(store: SQLStore, backend: Backend) -> None:
    await seed(store)
    async with await open_store(backend.url, credential_key=bytes(32)) as other:
        with pytest.raises(ConfigError, match="not the one it was stored with") as info:
            await other.get_credential_body("c")
        assert info.value.code == "credential_key_mismatch"
    async with await open_store(backend.url) as keyless:
        with pytest.raises(ConfigError, match="without a credential key"):
            await keyless.get_credential_body("c")
    with pytest.raises(ConfigError, match="32 bytes"):
        await open_store(backend.url, credential_key=b"short")


async def test_a_run_gets_only_the_credentials_its_jobs_use(store: SQLStore) -> None:
    await seed(store)
    await store.put_credential(NewCredential(id="c2", project_id="p", name="x", body={}))
    run_id = (await store.enqueue(webhook())).run_id
    assert await store.get_credential_body("c", run_id=run_id) == {FIELD: SECRET}
    with pytest.raises(NotFoundError):
        await store.get_credential_body("c2", run_id=run_id)
    with pytest.raises(NotFoundError):
        await store.get_credential_body("c", run_id="no-such-run")


# -- dataclips -----------------------------------------------------------------------------


async def test_dataclips_are_saved_read_and_wiped(store: SQLStore, clock: FakeClock) -> None:
    await store.create_project(Project(id="p", name="Clinic"))
    saved = await store.save_dataclip(
        "p",
        NewDataclip(DataclipType.HTTP_REQUEST, {"patient": 7}, request={"method": "POST"}),
    )
    assert await store.get_dataclip(saved.id) == saved
    assert saved.as_input() == {"data": {"patient": 7}, "request": {"method": "POST"}}
    assert (saved.wiped_at, saved.inserted_at) == (None, clock.now())

    clock.advance(minutes=1)
    await store.wipe_dataclip(saved.id)
    wiped = await store.get_dataclip(saved.id)
    assert (wiped.body, wiped.request, wiped.wiped_at) == (None, None, clock.now())
    assert (wiped.id, wiped.type, wiped.project_id) == (saved.id, saved.type, "p")
    assert wiped.inserted_at == saved.inserted_at

    for call in (store.get_dataclip("nope"), store.wipe_dataclip("nope")):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(NotFoundError):
        await store.save_dataclip("nope", NewDataclip(DataclipType.GLOBAL, {}))


# -- enqueue -------------------------------------------------------------------------------


async def test_enqueue_writes_input_work_order_and_run(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    made = await store.enqueue(webhook({"patient": 7}))
    assert made.dataclip_id is not None
    assert (await store.get_dataclip(made.dataclip_id)).body == {"patient": 7}
    order = await store.get_work_order(made.work_order_id)
    assert (order.workflow_id, order.trigger_id, order.dataclip_id, order.state) == (
        "w",
        "t",
        made.dataclip_id,
        RunState.AVAILABLE,
    )
    detail = await store.get_run(made.run_id)
    run = detail.run
    assert (run.state, run.queue, run.priority, run.inserted_at) == (
        RunState.AVAILABLE,
        "default",
        Priority.IMMEDIATE,
        clock.now(),
    )
    assert run.snapshot_id == (await store.get_workflow("w")).snapshot_id
    assert run.options == Options(run_timeout_ms=60_000)
    assert detail.steps == ()
    assert await store.queue_depth() == {"default": 1}


async def test_a_failed_enqueue_leaves_nothing(store: SQLStore) -> None:
    await seed(store)
    first = await store.enqueue(webhook())
    # The dataclip and work order are written before the run, whose id is taken: all go.
    with pytest.raises(ConflictError):
        await store.enqueue(
            webhook(
                input=NewDataclip(DataclipType.HTTP_REQUEST, {}, id="d-new"), run_id=first.run_id
            )
        )
    with pytest.raises(NotFoundError):
        await store.get_dataclip("d-new")
    runs = (await store.list_runs()).items
    assert [run.id for run in runs] == [first.run_id]
    assert await store.queue_depth() == {"default": 1}
    # Nor does a new queue name survive a refused enqueue.
    with pytest.raises(ConflictError):
        await store.enqueue(webhook(queue="brand_new", run_id=first.run_id))
    assert await store.claim(5, ["brand_new"]) == []


async def test_enqueue_checks_what_it_is_given(store: SQLStore) -> None:
    await seed(store)
    made = await store.enqueue(webhook())
    assert made.dataclip_id is not None
    # A rerun: an existing input, in the same work order, from a job.
    rerun = await store.enqueue(
        webhook(
            input=None,
            input_dataclip_id=made.dataclip_id,
            work_order_id=made.work_order_id,
            starting_node_id="j2",
            queue="manual",
        )
    )
    assert rerun.work_order_id == made.work_order_id
    assert (await store.get_run(rerun.run_id)).run.starting_node_id == "j2"
    bad: list[tuple[type[Exception], EnqueueRequest]] = [
        (NotFoundError, webhook(workflow_id="nope")),
        (NotFoundError, webhook(trigger_id="nope")),
        (NotFoundError, webhook(starting_node_id="nope")),
        (NotFoundError, webhook(input=None, input_dataclip_id="nope")),
        (NotFoundError, webhook(work_order_id="nope")),
        (InputError, webhook(input_dataclip_id=made.dataclip_id)),
        (InputError, webhook(queue="no spaces")),
        (InputError, webhook(priority=7)),
        (InputError, webhook(options=Options(job_log_level="loud"))),
    ]
    for error, request in bad:
        with pytest.raises(error):
            await store.enqueue(request)
    assert len((await store.list_runs()).items) == 2


# -- claim ---------------------------------------------------------------------------------


async def test_claims_are_fifo_within_priority(store: SQLStore) -> None:
    await seed(store)
    cron = {"priority": Priority.NORMAL}
    a = (await store.enqueue(webhook(**cron))).run_id
    b = (await store.enqueue(webhook())).run_id
    c = (await store.enqueue(webhook())).run_id
    d = (await store.enqueue(webhook(**cron))).run_id
    claimed = [run.id for run in await store.claim(3, ["*"], "w1")]
    assert claimed == [b, c, a]
    assert [run.id for run in await store.claim(3, ["*"], "w1")] == [d]
    assert await store.claim(3, ["*"], "w1") == []


async def test_claims_honour_the_queue_list(store: SQLStore) -> None:
    """Spec §4.4 and scenario 6 of §12: a list without '*' filters, one with it prefers."""
    await seed(store)
    default = (await store.enqueue(webhook())).run_id
    cron_manual = (await store.enqueue(webhook(queue="manual", priority=Priority.NORMAL))).run_id
    fast = (await store.enqueue(webhook(queue="fast_lane"))).run_id
    manual = (await store.enqueue(webhook(queue="manual"))).run_id
    custom = (await store.enqueue(webhook(queue="bulk"))).run_id

    assert await store.claim(5, ["nothing_here"]) == []
    assert [r.id for r in await store.claim(5, ["fast_lane"])] == [fast]
    assert await store.claim(5, ["fast_lane"]) == []
    # Manual first (priority within it), then every other queue by priority and arrival.
    assert [r.id for r in await store.claim(5, ["manual", "*"])] == [
        manual,
        cron_manual,
        default,
        custom,
    ]


async def test_a_preferred_queue_comes_before_priority(store: SQLStore) -> None:
    await seed(store)
    default = (await store.enqueue(webhook())).run_id
    bulk = (await store.enqueue(webhook(queue="bulk", priority=Priority.NORMAL))).run_id
    assert [r.id for r in await store.claim(2, ["bulk", "*"])] == [bulk, default]


async def test_claims_honour_demand_and_record_the_worker(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    ids = await enqueue_many(store, 5)
    clock.advance(seconds=3)
    first = await store.claim(2, worker_name="pod-1")
    assert [run.id for run in first] == ids[:2]
    assert all(run.claimed_at == clock.now() and run.run_timeout_ms == 60_000 for run in first)
    run = (await store.get_run(ids[0])).run
    assert (run.state, run.worker_name, run.claimed_at) == (RunState.CLAIMED, "pod-1", clock.now())
    assert [run.id for run in await store.claim(10)] == ids[2:]
    for demand in (0, -1):
        with pytest.raises(InputError):
            await store.claim(demand)
    assert await store.queue_depth() == {}


async def test_concurrent_claimers_never_share_a_run(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """Scenario 7 of §12, many times over: claims race on several connections (PostgreSQL)
    or several stores on one file (SQLite), and every run goes to exactly one claimer."""
    await seed(store)
    ids = await enqueue_many(store, 60)
    others = [await open_store(backend.url, clock=clock) for _ in range(2)]
    stores = [store, *others]
    try:

        async def claimer(number: int) -> list[str]:
            mine: list[str] = []
            while True:
                demand = 1 + number % 3
                got = await stores[number % len(stores)].claim(demand, ["*"], f"w{number}")
                if not got:
                    return mine
                assert len(got) <= demand
                mine += [run.id for run in got]

        results = await asyncio.gather(*(claimer(n) for n in range(12)))
    finally:
        for other in others:
            await other.close()
    everything = [run_id for claimed in results for run_id in claimed]
    assert sorted(everything) == sorted(ids)  # each run once: none twice, none missed


# -- run transitions -----------------------------------------------------------------------


async def test_illegal_run_transitions_are_refused_and_change_nothing(store: SQLStore) -> None:
    await seed(store)
    run_id = (await store.enqueue(webhook())).run_id
    before = await store.get_run(run_id)
    for call in (
        store.start_run(run_id),
        store.join_run(run_id),
        store.complete_run(run_id, RunCompletion(SUCCESS)),
        store.start_step(run_id, StepStart("s1", "j1")),
    ):
        with pytest.raises(TransitionError) as info:
            await call
        assert info.value.state == "available"
    assert await store.get_run(run_id) == before
    with pytest.raises(NotFoundError):
        await store.start_run("no-such-run")


async def test_a_run_that_fails_before_starting_completes_from_claimed(store: SQLStore) -> None:
    """Spec §5.4: a credential that cannot be loaded ends the run without run:start."""
    await seed(store)
    run_id = await claimed_run(store)
    failure = ExitReason(Reason.EXCEPTION, "CredentialLoadError", "Failed to load credential c")
    await store.complete_run(run_id, RunCompletion(failure))
    run = await store.peek_run(run_id)
    assert (run.state, run.error_type, run.error_message, run.started_at) == (
        RunState.EXCEPTION,
        "CredentialLoadError",
        "Failed to load credential c",
        None,
    )


async def test_completing_a_final_run_is_refused(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    run_id = await started_run(store)
    clock.advance(seconds=2)
    await store.complete_run(run_id, RunCompletion(ExitReason(Reason.FAIL, "JobError")))
    done = await store.peek_run(run_id)
    assert (done.state, done.finished_at) == (RunState.FAILED, clock.now())
    clock.advance(seconds=2)
    for call in (
        store.complete_run(run_id, RunCompletion(SUCCESS)),
        store.start_run(run_id),
        store.join_run(run_id),
        store.cancel_run(run_id),
    ):
        with pytest.raises(TransitionError):
            await call
    with pytest.raises(TransitionError, match="already in completed state"):
        await store.complete_run(run_id, RunCompletion(SUCCESS))
    assert (await store.get_run(run_id)).run == done


async def test_each_exit_reason_lands_on_its_final_state(store: SQLStore) -> None:
    await seed(store)
    expected = {
        Reason.SUCCESS: RunState.SUCCESS,
        Reason.FAIL: RunState.FAILED,
        Reason.CRASH: RunState.CRASHED,
        Reason.KILL: RunState.KILLED,
        Reason.EXCEPTION: RunState.EXCEPTION,
        Reason.CANCEL: RunState.CANCELLED,
    }
    for reason, state in expected.items():
        run_id = await started_run(store)
        await store.complete_run(run_id, RunCompletion(ExitReason(reason)))
        assert await state_of(store, run_id) is state
    run_id = await started_run(store)
    with pytest.raises(TransitionError):
        await store.complete_run(run_id, RunCompletion(ExitReason(Reason.LOST)))
    assert await state_of(store, run_id) is RunState.STARTED


async def test_a_queued_run_is_cancelled_at_once(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    queued = (await store.enqueue(webhook())).run_id
    assert await store.cancel_run(queued) is CancelAction.NOW
    run = (await store.get_run(queued)).run
    assert (run.state, run.finished_at) == (RunState.CANCELLED, clock.now())
    assert await store.claim(1) == []
    with pytest.raises(TransitionError, match="already in completed state"):
        await store.cancel_run(queued)


async def test_a_run_in_flight_is_cancelled_through_its_worker(
    store: SQLStore, clock: FakeClock
) -> None:
    """Issue 8: the store records the request (the coordinator tells the worker); the run
    ends when its worker completes it with reason cancel, and is not retried."""
    await seed(store)
    await store.replace_workflow(workflow(retry=RetryPolicy(max_retries=3)))
    claimed = await claimed_run(store)
    started = await started_run(store)
    assert await store.cancel_requested() == []
    for run_id in (claimed, started):
        assert await store.cancel_run(run_id) is CancelAction.ASK_WORKER
    asked = clock.now()
    clock.advance(seconds=1)
    assert await store.cancel_run(started) is CancelAction.ASK_WORKER  # asked again: kept
    assert await store.cancel_requested() == sorted([claimed, started])
    run = (await store.get_run(started)).run
    assert (run.state, run.cancel_requested_at) == (RunState.STARTED, asked)
    # The worker stops the child: reason cancel; a crash while stopping is not retried either.
    await store.complete_run(started, RunCompletion(ExitReason(Reason.CANCEL, "CancelError")))
    await store.join_run(claimed)
    await store.complete_run(claimed, RunCompletion(ExitReason(Reason.CRASH, "ExitError")))
    assert await state_of(store, started) is RunState.CANCELLED
    assert await store.cancel_requested() == []
    assert await store.queue_depth() == {}  # no retry of either


async def test_runs_are_counted_queued_in_flight_and_ended_and_stay_counted_once_deleted(
    store: SQLStore, clock: FakeClock
) -> None:
    """What /metrics shows of the store: runs per live state, and runs ended per final state
    by every way a run ends (a worker's completion, the lost-run sweep, a cancel while
    queued), kept when the runs are deleted; a refused transition counts nothing."""
    await seed(store)
    for reason in (Reason.SUCCESS, Reason.SUCCESS, Reason.FAIL):
        await store.complete_run(await started_run(store), RunCompletion(ExitReason(reason)))
    lost = await claimed_run(store, options=Options(run_timeout_ms=1000))
    clock.advance(seconds=60)
    assert [run.id for run in await store.mark_lost(grace=timedelta(seconds=1))] == [lost]
    started = await started_run(store)
    with pytest.raises(TransitionError):
        await store.complete_run(started, RunCompletion(ExitReason(Reason.LOST)))
    await claimed_run(store)
    await store.cancel_run((await store.enqueue(webhook())).run_id)
    await store.enqueue(webhook())
    ended = {"success": 2, "failed": 1, "lost": 1, "cancelled": 1}
    assert await store.run_counts() == {"available": 1, "claimed": 1, "started": 1}
    assert await store.run_endings() == ended
    await store.delete_project("p")
    assert await store.run_counts() == {}
    assert await store.run_endings() == ended


#: What the coordinator reads again and again whatever its load (the hub's poll, the
#: reaper's sweep, /health/ready, /metrics), and the indexes of live runs each may read.
PERIODIC_READS = {
    "queue_depth": ("runs_pending_input",),
    "run_counts": ("runs_pending_input",),
    "unjoined_claims": ("runs_in_flight",),
    "lose_runs": ("runs_in_flight",),
    "cancel_requested_runs": ("runs_cancel_requested", "runs_in_flight"),
}


def _sqlite_schema(tmp_path: Path) -> sqlite3.Connection:
    """An empty SQLite database with the store's schema, for reading query plans."""
    database = sqlite3.connect(tmp_path / "plans.db")
    for file in load_schema("sqlite"):
        database.executescript(file.script)
    return database


def test_a_listing_of_one_work_order_workflow_or_project_reads_its_index(
    tmp_path: Path,
) -> None:
    """SQLite: a listing of one of them, and a text search's window of one, starts from that
    one's index, not from every run newest first (for a quiet workflow in a long history,
    every run was read: some 120 ms at a million, the event loop stopped; bench/history.py)."""
    database = _sqlite_schema(tmp_path)
    queries = load_queries("sqlite")
    for name, index in (
        ("list_runs_of_work_order", "runs_work_order (work_order_id=?)"),
        ("list_runs_of_workflow", "runs_workflow (workflow_id=?)"),
        ("list_runs_of_project", "runs_project (project_id=?)"),
        ("search_window_of_work_order", "runs_work_order (work_order_id=?)"),
        ("search_window_of_workflow", "runs_workflow (workflow_id=?)"),
        ("search_window_of_project", "runs_project (project_id=?)"),
    ):
        params = dict.fromkeys(re.findall(r":(\w+)", queries[name].sql))
        plan = database.execute(f"EXPLAIN QUERY PLAN {queries[name].sql}", params).fetchall()
        assert f"SEARCH r USING INDEX {index}" in [row[-1] for row in plan], (name, plan)


def _plan(database: sqlite3.Connection, query: str) -> list[str]:
    """SQLite's plan of one of the store's queries, a line per step."""
    sql = load_queries("sqlite")[query].sql
    params = dict.fromkeys(re.findall(r":(\w+)", sql))
    return [row[-1] for row in database.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_a_text_search_reads_its_window_by_seq(tmp_path: Path) -> None:
    """SQLite: a text search reads the runs of its window by seq (reads.py reads the window
    as the listing of its filters would, so through one work order's, workflow's or
    project's index: the test above), never every run newest first (a search within a quiet
    workflow read the whole history: some 130 ms at a million, the event loop stopped;
    bench/history.py)."""
    plan = _plan(_sqlite_schema(tmp_path), "search_runs")
    of_runs = [step for step in plan if step.split()[1:2] == ["r"]]
    assert of_runs == ["SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"], plan


#: The audit trail's listings of one filter (store/audit.py) and the index each starts from.
AUDIT_LISTINGS = {
    "list_audit_records_of_target": ("audit_records_target (target_id=?)",),
    "list_audit_records_of_actor": (
        "audit_records_actor (actor_id=?)",
        "audit_records_actor_name (<expr>=?)",
    ),
    "list_audit_records_of_code": ("audit_records_code (<expr>=?)",),
    "list_audit_records_of_noun": ("audit_records_noun (<expr>=?)",),
    "list_audit_records_of_project": ("audit_records_project (project_id=?)",),
}


def test_a_filtered_audit_listing_reads_its_filters_index(tmp_path: Path) -> None:
    """SQLite: a listing of the trail filtered on a target, an actor, an action or a project
    reads that filter's records newest first through its index, in the index's order (no
    sort), never the whole trail (a rare actor's page read a million records: some 300 ms,
    the event loop stopped; bench/history.py)."""
    database = _sqlite_schema(tmp_path)
    for query, indexes in AUDIT_LISTINGS.items():
        plan = _plan(database, query)
        searches = [step for step in plan if "USING INDEX audit_records_" in step]
        assert searches == [f"SEARCH audit_records USING INDEX {i}" for i in indexes], plan
        assert not [s for s in plan if "SCAN audit_records" in s or "FOR ORDER BY" in s], plan


def test_an_audit_listing_from_a_time_reads_the_records_since_then(tmp_path: Path) -> None:
    """SQLite: a listing of the trail with a start time alone reads at most the newest
    records (audit.SINCE_PROBE), then the records since then through audit_records_at,
    never the whole trail (a start after the last record read a million: bench/history.py)."""
    database = _sqlite_schema(tmp_path)
    recent = _plan(database, "list_audit_records_recent")
    assert recent[:2] == ["CO-ROUTINE recent", "SCAN audit_records"], recent  # LIMIT :probe
    since = _plan(database, "list_audit_records_since")
    assert since[0] == "SEARCH audit_records USING INDEX audit_records_at (at>?)", since


def test_the_audit_sweep_reads_only_what_it_deletes(tmp_path: Path) -> None:
    """SQLite: a batch of the audit sweep reads the records older than its cutoff of the
    project, or of the instance and each deleted project, through audit_records_project_at;
    never the kept records (the daily sweep that found nothing to delete read the whole
    trail: some 180 ms at a million records; bench/history.py)."""
    database = _sqlite_schema(tmp_path)
    for query in ("delete_old_audit_records", "delete_old_instance_audit_records"):
        plan = _plan(database, query)
        reads = [step for step in plan if step.split()[1:2] in (["audit_records"], ["a"])]
        assert reads, plan
        assert all("INDEX audit_records_project_at" in s or "(rowid=?)" in s for s in reads)
        assert "audit_records_project_at (project_id=? AND at<?)" in " ".join(reads), plan


def test_no_periodic_read_visits_the_ended_runs(tmp_path: Path) -> None:
    """SQLite runs the coordinator's statements on its event loop: these read an index of
    the runs queued or in flight, never every run ever made (a scan of a million took 0.1 to
    2 s, the loop stopped; bench/history.py). PostgreSQL's planner picks by cost, which on
    a test's few rows says nothing."""
    database = _sqlite_schema(tmp_path)
    queries = load_queries("sqlite")
    for name, indexes in PERIODIC_READS.items():
        params = dict.fromkeys(re.findall(r":(\w+)", queries[name].sql))
        plan = database.execute(f"EXPLAIN QUERY PLAN {queries[name].sql}", params).fetchall()
        of_runs = [row[-1] for row in plan if row[-1].split()[1:2] == ["runs"]]
        assert of_runs, (name, plan)
        assert all(any(f"INDEX {i} " in f"{d} " for i in indexes) for d in of_runs), (name, of_runs)


async def test_the_whole_run_is_recorded(store: SQLStore, clock: FakeClock) -> None:
    """Spec §5.11's event order, and what each event leaves in the store."""
    await seed(store)
    made = await store.enqueue(webhook({"patient": 7}))
    await store.claim(1, ["*"], "pod-1")
    await store.join_run(made.run_id)
    started = clock.advance(seconds=1)
    await store.start_run(made.run_id, timestamp=started)
    await store.start_step(made.run_id, StepStart("s1", "j1", made.dataclip_id))
    clock.advance(seconds=1)
    await store.complete_step(
        made.run_id, StepCompletion("s1", SUCCESS, "out-1", {"data": {"count": 1}})
    )
    await store.start_step(made.run_id, StepStart("s2", "j2", "out-1"))
    await store.complete_step(made.run_id, StepCompletion("s2", SUCCESS, "out-2", {"data": {}}))
    await store.complete_run(made.run_id, RunCompletion(SUCCESS, "out-2"))

    detail = await store.get_run(made.run_id)
    run = detail.run
    assert (run.state, run.started_at, run.final_dataclip_id) == (
        RunState.SUCCESS,
        started,
        "out-2",
    )
    assert [(s.id, s.job_id, s.state) for s in detail.steps] == [
        ("s1", "j1", StepState.SUCCESS),
        ("s2", "j2", StepState.SUCCESS),
    ]
    assert detail.steps[0].input_dataclip_id == made.dataclip_id
    output = await store.get_dataclip("out-1")
    assert (output.type, output.body, output.project_id) == (
        DataclipType.STEP_RESULT,
        {"data": {"count": 1}},
        "p",
    )
    assert (await store.get_work_order(made.work_order_id)).state is RunState.SUCCESS


async def test_step_events_are_checked(store: SQLStore) -> None:
    await seed(store)
    run_id = await started_run(store)
    other = await started_run(store)
    with pytest.raises(NotFoundError) as info:
        await store.start_step(run_id, StepStart("s1", "not-a-job"))
    assert info.value.field == "job_id"
    with pytest.raises(NotFoundError):
        await store.start_step(run_id, StepStart("s1", "j1", input_dataclip_id="nope"))
    await store.start_step(run_id, StepStart("s1", "j1"))
    with pytest.raises(ConflictError):
        await store.start_step(run_id, StepStart("s1", "j1"))
    with pytest.raises(NotFoundError) as info:
        await store.complete_step(other, StepCompletion("s1", SUCCESS))
    assert info.value.field == "step_id"
    with pytest.raises(InputError):
        await store.complete_step(run_id, StepCompletion("s1", SUCCESS, output={"a": 1}))
    await store.complete_step(
        run_id, StepCompletion("s1", ExitReason(Reason.FAIL, "JobError", "boom"))
    )
    with pytest.raises(TransitionError, match="already in completed state"):
        await store.complete_step(run_id, StepCompletion("s1", SUCCESS))
    [step] = (await store.get_run(run_id)).steps
    assert (step.state, step.error_type, step.error_message, step.output_dataclip_id) == (
        StepState.FAIL,
        "JobError",
        "boom",
        None,  # withheld: no output and no id (DATACLIP_TOO_LARGE)
    )


async def test_an_output_not_saved_leaves_a_wiped_dataclip(
    store: SQLStore, clock: FakeClock
) -> None:
    """Spec §5.8: with output_dataclips off the worker sends only the id."""
    await seed(store)
    run_id = await started_run(store)
    await store.start_step(run_id, StepStart("s1", "j1"))
    await store.complete_step(run_id, StepCompletion("s1", SUCCESS, output_dataclip_id="out-1"))
    clip = await store.get_dataclip("out-1")
    assert (clip.body, clip.wiped_at, clip.type) == (None, clock.now(), DataclipType.STEP_RESULT)
    assert (await store.get_run(run_id)).steps[0].output_dataclip_id == "out-1"


# -- rollback and lost runs ----------------------------------------------------------------


async def test_claims_never_joined_go_back_to_the_queue(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    first, joined, late = await enqueue_many(store, 3)
    await store.claim(2, ["*"], "pod-1")
    await store.join_run(joined)
    clock.advance(seconds=30)
    await store.claim(1, ["*"], "pod-2")  # late is claimed 30 s after the others
    clock.advance(seconds=1)

    assert await store.rollback_unjoined(claimed_before=clock.now() - timedelta(seconds=30)) == [
        first
    ]
    run = (await store.get_run(first)).run
    assert (run.state, run.claimed_at, run.worker_name) == (RunState.AVAILABLE, None, None)
    assert await state_of(store, joined) is RunState.CLAIMED
    assert await state_of(store, late) is RunState.CLAIMED
    # Explicit rollback (the claim reply never reached the worker): joined runs stay.
    assert await store.rollback_claims([late, joined, "nope"]) == [late]
    assert [r.id for r in await store.claim(5)] == [first, late]


async def test_runs_in_flight_too_long_are_lost(store: SQLStore, clock: FakeClock) -> None:
    """Spec §7.5 and scenario 20 of §12."""
    await seed(store)
    claimed = await claimed_run(store, options=Options(run_timeout_ms=1000))
    started = await started_run(store, options=Options(run_timeout_ms=1000))
    await store.start_step(started, StepStart("s1", "j1"))
    await store.complete_step(started, StepCompletion("s1", SUCCESS, "o1", {}))
    await store.start_step(started, StepStart("s2", "j2"))
    no_timeout = await started_run(store, options=Options())
    queued = (await store.enqueue(webhook())).run_id

    clock.advance(milliseconds=1000 + 10_000)  # timeout + grace: not yet past
    assert await store.mark_lost(grace=timedelta(seconds=10)) == []
    clock.advance(milliseconds=1)
    lost = await store.mark_lost(grace=timedelta(seconds=10), default_timeout_ms=300_000)
    assert {(r.id, r.error_type) for r in lost} == {
        (claimed, "LostAfterClaim"),
        (started, "LostAfterStart"),
    }
    detail = await store.get_run(started)
    assert (detail.run.state, detail.run.finished_at) == (RunState.LOST, clock.now())
    assert [(s.id, s.state) for s in detail.steps] == [
        ("s1", StepState.SUCCESS),
        ("s2", StepState.LOST),
    ]
    assert detail.steps[1].finished_at == clock.now()
    assert await state_of(store, no_timeout) is RunState.STARTED
    assert await state_of(store, queued) is RunState.AVAILABLE
    # A slow worker's late events are refused.
    with pytest.raises(TransitionError, match="already in completed state"):
        await store.complete_run(started, RunCompletion(SUCCESS))
    with pytest.raises(TransitionError):
        await store.complete_step(started, StepCompletion("s2", SUCCESS))
    clock.advance(seconds=300)
    assert [r.id for r in await store.mark_lost()] == [no_timeout]


# -- logs ----------------------------------------------------------------------------------


async def test_a_log_batch_is_stored_whole_or_not_at_all(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    run_id = await started_run(store)
    await store.start_step(run_id, StepStart("s1", "j1"))
    good = log("ok", clock, step_id="s1")
    for bad, error in (
        (log("bad level", clock, level="loud"), InputError),
        (log("bad source", clock, source="TOOLONGSRC"), InputError),
        (log("bad step", clock, step_id="not-a-step"), NotFoundError),
    ):
        with pytest.raises(error):
            await store.append_logs(run_id, [good, good, bad])
        assert (await store.get_logs(run_id)).items == ()
    ids = await store.append_logs(run_id, [good, log("two", clock, source="R/T")])
    single = await store.append_log(run_id, log("three", clock, level="error"))
    page = await store.get_logs(run_id)
    assert [(e.id, e.message, e.step_id) for e in page.items] == [
        (ids[0], "ok", "s1"),
        (ids[1], "two", None),
        (single, "three", None),
    ]
    with pytest.raises(NotFoundError):
        await store.append_log("no-such-run", good)


async def test_logs_are_read_in_time_order_a_page_at_a_time(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    run_id = await started_run(store)
    base = clock.now()
    # Spec §5.11: worker lines are stamped 10 ms in the past, so arrival order is not time order.
    offsets = [30, 10, 20, 10, 50, 40, 0]
    lines = [log(f"at {ms}", clock, timestamp=base + timedelta(milliseconds=ms)) for ms in offsets]
    await store.append_logs(run_id, lines)
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.get_logs(run_id, cursor=cursor, limit=3)
        seen += [entry.message for entry in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"at {ms}" for ms in sorted(offsets)]
    with pytest.raises(NotFoundError):
        await store.get_logs("no-such-run")


async def test_nul_characters_are_treated_alike_on_both_backends(
    store: SQLStore, clock: FakeClock
) -> None:
    """PostgreSQL cannot hold NUL in text or jsonb: text loses it (as Lightning's log lines
    do), a JSON document holding it is refused, and SQLite does exactly the same."""
    await seed(store)
    run_id = await started_run(store)
    await store.append_log(run_id, log("a\x00b", clock))
    assert [e.message for e in (await store.get_logs(run_id)).items] == ["ab"]
    with pytest.raises(InputError, match="NUL"):
        await store.save_dataclip("p", NewDataclip(DataclipType.GLOBAL, {"k": "a\x00"}))
    escaped = await store.save_dataclip("p", NewDataclip(DataclipType.GLOBAL, {"k": "\\u0000"}))
    assert (await store.get_dataclip(escaped.id)).body == {"k": "\\u0000"}


# -- listing runs --------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_with_filters(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    await store.create_workflow(
        workflow(id="w2", jobs=(Job(id="k", body="", adaptor="a"),), triggers=(), edges=())
    )
    start = clock.now()
    ids = []
    for _ in range(5):
        ids.append((await store.enqueue(webhook())).run_id)
        clock.advance(minutes=1)
    other = (await store.enqueue(webhook(workflow_id="w2", trigger_id=None))).run_id
    await store.claim(1, ["*"])  # ids[0]

    everything = await store.list_runs(limit=1000)
    assert [r.id for r in everything.items] == [other, *reversed(ids)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(RunFilter(workflow_id="w"), cursor=cursor, limit=2)
        seen += [run.id for run in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(ids))

    claimed = await store.list_runs(RunFilter(states=frozenset({RunState.CLAIMED})))
    assert [r.id for r in claimed.items] == [ids[0]]
    window = RunFilter(
        workflow_id="w",
        inserted_from=start + timedelta(minutes=1),
        inserted_until=start + timedelta(minutes=3),
    )
    assert [r.id for r in (await store.list_runs(window)).items] == [ids[2], ids[1]]
    assert (await store.list_runs(RunFilter(project_id="nope"))).items == ()
    with pytest.raises(InputError):
        await store.list_runs(RunFilter(states=frozenset()))


async def test_one_work_order_workflow_or_project_is_listed_with_the_other_filters(
    store: SQLStore,
) -> None:
    """A listing of one work order, workflow or project (read through that one's index)
    gives what the same filters give without it: the other filters still apply, pages
    follow each other, and a filter on another project leaves nothing."""
    await seed(store)
    await store.create_project(Project(id="q", name="Other"))
    job = Job(id="k", body="", adaptor="a")
    await store.create_workflow(
        workflow(id="w2", project_id="q", jobs=(job,), triggers=(), edges=())
    )
    ours = [(await store.enqueue(webhook())).run_id for _ in range(3)]
    theirs = (await store.enqueue(webhook(workflow_id="w2", trigger_id=None))).run_id
    [first] = await store.claim(1, ["*"])  # ours[0]
    order = (await store.get_run(ours[1])).run.work_order_id

    async def listed(where: RunFilter, limit: int = 2) -> list[str]:
        seen, cursor = [], None
        while True:
            page = await store.list_runs(where, cursor=cursor, limit=limit)
            seen += [run.id for run in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    newest_first = list(reversed(ours))
    assert await listed(RunFilter(workflow_id="w")) == newest_first
    assert await listed(RunFilter(project_id="p")) == newest_first
    assert await listed(RunFilter(project_id="q")) == [theirs]
    assert await listed(RunFilter(work_order_id=order)) == [ours[1]]
    claimed = frozenset({RunState.CLAIMED})
    assert await listed(RunFilter(workflow_id="w", states=claimed)) == [first.id]
    assert await listed(RunFilter(project_id="p", project_ids=frozenset({"q"}))) == []
    assert await listed(RunFilter(workflow_id="w2", project_id="p")) == []
    assert await listed(RunFilter(work_order_id=order, workflow_id="w2")) == []


async def test_a_members_listing_is_each_of_its_projects_newest_merged(store: SQLStore) -> None:
    """A member's listing (some projects only: guard.Scope), read as each project's newest
    merged, gives the runs of those projects newest first with the other filters, page
    after page; a search's window too; no project, no run."""
    await seed(store)
    for project in ("q", "r"):
        job = Job(id=f"k{project}", body="", adaptor="a")
        await store.create_project(Project(id=project, name=project))
        await store.create_workflow(
            workflow(id=f"w{project}", project_id=project, jobs=(job,), triggers=(), edges=())
        )
    made: dict[str, list[str]] = {"w": [], "wq": [], "wr": []}
    for name in ("w", "wq", "w", "wr", "wq", "w", "wq"):
        trigger = "t" if name == "w" else None
        request = webhook(workflow_id=name, trigger_id=trigger)
        made[name].append((await store.enqueue(request)).run_id)
    [claimed] = await store.claim(1, ["*"])  # the oldest: made["w"][0]

    async def listed(where: RunFilter) -> list[str]:
        seen, cursor = [], None
        while True:
            page = await store.list_runs(where, cursor=cursor, limit=2)
            seen += [run.id for run in page.items]
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    p_and_q = frozenset({"p", "q"})
    everything = [run.id for run in (await store.list_runs(limit=100)).items]
    ours = [run for run in everything if run in made["w"] + made["wq"]]
    assert len(ours) == 6
    assert await listed(RunFilter(project_ids=p_and_q)) == ours
    assert await listed(RunFilter(project_ids=frozenset({"r"}))) == made["wr"]
    assert await listed(RunFilter(project_ids=frozenset())) == []
    only_claimed = RunFilter(project_ids=p_and_q, states=frozenset({RunState.CLAIMED}))
    assert await listed(only_claimed) == [claimed.id]
    assert await listed(RunFilter(project_ids=p_and_q, text="nothing of the sort")) == []
    assert await listed(RunFilter(project_ids=frozenset({"q", "r"}), workflow_id="wq")) == list(
        reversed(made["wq"])
    )


async def test_a_members_listing_reads_each_of_its_projects_index() -> None:
    """A member's listing and search window read each of the member's projects through its
    index (list_runs_of_project), never list_runs: that read every run newest first until a
    page was full, for a member of a quiet project the whole history (some 120 ms at a
    million; bench/history.py)."""
    read: list[tuple[str, object]] = []

    class Recording:
        async def fetchall(self, query: str, params: dict[str, object]) -> list[object]:
            read.append((query, params["project_id"]))
            return []

    member = RunFilter(project_ids=frozenset({"b", "a"}))
    for where, query in ((member, "list_runs"), (replace(member, text="x"), "search_window")):
        read.clear()
        await reads.list_runs(cast(Tx, Recording()), where, None, 10)
        assert read == [(f"{query}_of_project", "a"), (f"{query}_of_project", "b")]


async def test_the_plan_is_what_the_run_recorded(store: SQLStore) -> None:
    """Spec §6.1: fetch:plan from the run's snapshot, even after the workflow changed."""
    await seed(store)
    made = await store.enqueue(webhook())
    await store.replace_workflow(workflow(jobs=(workflow().jobs[0],), edges=workflow().edges[:1]))
    plan = await store.get_plan(made.run_id)
    assert plan == {
        "id": made.run_id,
        "project_id": "p",
        "dataclip_id": made.dataclip_id,
        "starting_node_id": "t",
        "triggers": [{"id": "t"}],
        "jobs": [
            {
                "id": "j1",
                "body": "get('/patients')",
                "adaptor": "http",
                "credential_id": "c",
                "language": "python",
            },
            {
                "id": "j2",
                "name": "count",
                "body": "fn(count)",
                "adaptor": "common",
                "language": "python",
            },
        ],
        "edges": [
            {
                "id": "e1",
                "source_trigger_id": "t",
                "target_job_id": "j1",
                "condition": "always",
                "enabled": True,
            },
            {
                "id": "e2",
                "source_job_id": "j1",
                "target_job_id": "j2",
                "condition": "on_job_success",
                "enabled": True,
            },
        ],
        "options": {"run_timeout_ms": 60_000, "output_dataclips": True, "job_log_level": "info"},
    }
    assert Plan.from_wire(plan).id == made.run_id  # the worker can read it
    with pytest.raises(NotFoundError):
        await store.get_plan("no-such-run")


async def test_a_claim_reads_the_plan_and_the_input_together(store: SQLStore) -> None:
    """What a claim that fetches answers with: the plan as fetch:plan has it, and the run's
    input, read together; a wiped input is there, without its body."""
    await seed(store)
    made = await store.enqueue(webhook())
    plan, dataclip = await store.get_plan_and_input(made.run_id)
    assert plan == await store.get_plan(made.run_id)
    assert dataclip == await store.get_dataclip(str(made.dataclip_id))
    await store.wipe_dataclip(str(made.dataclip_id))
    _plan, wiped = await store.get_plan_and_input(made.run_id)
    assert wiped is not None and wiped.wiped_at is not None and wiped.body is None
    with pytest.raises(NotFoundError):
        await store.get_plan_and_input("no-such-run")


# -- issue 8: concurrency limits -------------------------------------------------------------


def other_workflow(workflow_id: str = "w2", project_id: str = "p", **changes: object) -> Workflow:
    """A one-job workflow beside w: webhook t-<id> -> job k-<id>."""
    base = Workflow(
        id=workflow_id,
        project_id=project_id,
        name=f"other {workflow_id}",
        jobs=(Job(id=f"k-{workflow_id}", body="fn(x)", adaptor="common"),),
        triggers=(WorkflowTrigger(id=f"t-{workflow_id}"),),
        edges=(Edge(f"e-{workflow_id}", f"k-{workflow_id}", source_trigger_id=f"t-{workflow_id}"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def enqueue_to(
    store: SQLStore, workflow_id: str, count: int = 1, **changes: object
) -> list[str]:
    made = []
    for i in range(count):
        request = EnqueueRequest(
            workflow_id=workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"i": i}),
            options=Options(run_timeout_ms=60_000),
        )
        made.append((await store.enqueue(replace(request, **changes))).run_id)  # type: ignore[arg-type]
    return made


async def finish(store: SQLStore, run_id: str, reason: ExitReason = SUCCESS) -> Run:
    """A claimed run joined, started and completed with ``reason``."""
    await store.join_run(run_id)
    await store.start_run(run_id)
    return await store.complete_run(run_id, RunCompletion(reason))


async def claim_ids(store: SQLStore, demand: int = 10, queues: Sequence[str] = ("*",)) -> list[str]:
    return [run.id for run in await store.claim(demand, queues, "pod")]


async def test_a_workflow_limit_of_one_runs_its_runs_one_at_a_time_in_order(
    store: SQLStore,
) -> None:
    """Scenario 8 of §12, and issue 8: in the workflow's own order (priority, then arrival),
    so a manual run keeps its priority; other workflows are not held up."""
    await seed(store)
    await store.replace_workflow(workflow(concurrency=1))
    await store.create_workflow(other_workflow())
    cron = await enqueue_to(store, "w", 2, priority=Priority.NORMAL)
    manual = await enqueue_to(store, "w", queue="manual")
    free = await enqueue_to(store, "w2", 2)

    # A claimer of the manual queue only may take w's next run: the manual one.
    assert await claim_ids(store, 10, ["manual"]) == manual
    assert sorted(await claim_ids(store)) == sorted(free)
    assert await claim_ids(store) == []
    await finish(store, manual[0])
    assert await claim_ids(store, 10, ["fast_lane"]) == []  # w's next is in default: not taken
    assert await claim_ids(store) == [cron[0]]
    assert await claim_ids(store) == []
    await finish(store, cron[0], ExitReason(Reason.FAIL))
    assert await claim_ids(store) == [cron[1]]


async def test_a_project_limit_spans_its_workflows(store: SQLStore) -> None:
    await seed(store)
    await store.create_workflow(other_workflow())
    await store.create_project(Project(id="q", name="Other"))
    await store.create_workflow(other_workflow("w3", "q"))
    await store.replace_project(Project(id="p", name="Clinic", concurrency=2))
    await store.replace_workflow(workflow(concurrency=1))
    w_runs = await enqueue_to(store, "w", 2)
    w2_runs = await enqueue_to(store, "w2", 2)
    q_runs = await enqueue_to(store, "w3", 3)
    # p: w's first (w allows one), then w2's first (p allows two); q has no limit.
    assert sorted(await claim_ids(store)) == sorted([w_runs[0], w2_runs[0], *q_runs])
    assert await claim_ids(store) == []
    await finish(store, w_runs[0])
    assert await claim_ids(store) == [w_runs[1]]
    await finish(store, w2_runs[0])
    assert await claim_ids(store) == [w2_runs[1]]


async def test_limits_set_or_lifted_apply_to_runs_already_queued(store: SQLStore) -> None:
    await seed(store)
    runs = await enqueue_to(store, "w", 4)
    await store.replace_workflow(workflow(concurrency=1))
    assert await claim_ids(store) == runs[:1]
    await store.replace_workflow(workflow())
    assert await claim_ids(store, 1) == runs[1:2]
    await store.replace_project(Project(id="p", name="Clinic", concurrency=3))
    assert await claim_ids(store) == runs[2:3]  # three in flight now: the project's limit
    await store.replace_project(Project(id="p", name="Clinic"))
    assert await claim_ids(store) == runs[3:]


async def test_racing_claimers_never_exceed_a_limit(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """Claims at once, on several connections (PostgreSQL) or stores (SQLite), round after
    round, while manual runs (which go first in their workflow's order) arrive in between:
    a workflow limited to 1 never has two runs in flight, one limited to 2 never three, and
    every run is claimed exactly once."""
    await seed(store)
    await store.replace_workflow(workflow(concurrency=1))
    await store.create_workflow(other_workflow(concurrency=2))
    await store.create_workflow(other_workflow("w3"))
    limits = {"w": 1, "w2": 2, "w3": 1000}
    made = {wf: await enqueue_to(store, wf, 15, priority=Priority.NORMAL) for wf in limits}
    others = [await open_store(backend.url, clock=clock) for _ in range(3)]
    stores = [store, *others]
    seen: list[str] = []

    async def manual(number: int) -> None:
        wf = "w" if number % 2 else "w2"
        made[wf] += await enqueue_to(stores[number % len(stores)], wf, queue="manual")

    try:
        for round_ in range(40):
            claims = await asyncio.gather(
                *(stores[n % len(stores)].claim(1 + n % 2, ["*"], f"w{n}") for n in range(8)),
                *(manual(n) for n in range(2 if round_ < 20 else 0)),
            )
            claimed = [run for batch in claims if batch for run in batch]
            flying = Counter(run.workflow_id for run in claimed)
            assert all(flying[wf] <= limit for wf, limit in limits.items()), flying
            seen += [run.id for run in claimed]
            for run in claimed:
                await finish(store, run.id)
    finally:
        for other in others:
            await other.close()
    assert sorted(seen) == sorted(run for runs in made.values() for run in runs)


# PostgreSQL only: on SQLite, BEGIN IMMEDIATE serializes claims, so there is nothing to interleave.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_claim_that_started_before_a_manual_run_arrived_waits_its_turn(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """The race claim_lock_limits closes on PostgreSQL, played step by step. A workflow
    limited to 1 has a cron run queued. Claim B reads the queue and picks that run, but a
    lock held elsewhere on the run makes it wait; meanwhile a manual run arrives, which goes
    first in the workflow's order, and claim A runs. Without the limits lock, A's snapshot
    sees the manual run and nothing in flight, B's saw the cron run and nothing in flight:
    both would claim, two runs of the workflow in flight. With it, A waits for B and then
    sees B's run in flight: exactly one is claimed."""
    assert backend.conninfo is not None
    await seed(store)
    await store.replace_workflow(workflow(concurrency=1))
    [cron] = await enqueue_to(store, "w", priority=Priority.NORMAL)
    async with (
        await open_store(backend.url, clock=clock) as store_a,
        await open_store(backend.url, clock=clock) as store_b,
        await psycopg.AsyncConnection.connect(backend.conninfo) as holder,
    ):
        await holder.execute("SELECT id FROM runs WHERE id = %s FOR UPDATE", (cron,))
        claim_b = asyncio.create_task(store_b.claim(1, ["*"], "b"))
        await _until_a_claim_waits(backend)
        [manual] = await enqueue_to(store, "w", queue="manual")
        claim_a = asyncio.create_task(store_a.claim(1, ["*"], "a"))
        await asyncio.sleep(0.3)  # A claims now, or waits for B's turn to end
        await holder.rollback()  # B goes on
        got_a, got_b = await asyncio.wait_for(asyncio.gather(claim_a, claim_b), 10)
    claimed = [run.id for run in (*got_a, *got_b)]
    assert claimed == [cron]  # B's; A then saw it in flight and took nothing
    assert await claim_ids(store) == []
    await finish(store, cron)
    assert await claim_ids(store) == [manual]


async def _until_a_claim_waits(backend: Backend) -> None:
    assert backend.conninfo is not None
    async with await psycopg.AsyncConnection.connect(backend.conninfo, autocommit=True) as pg:
        for _ in range(200):
            cursor = await pg.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("claim B never waited for the held row")


# -- issue 8: retries ---------------------------------------------------------------------------


async def test_a_crash_is_retried_after_its_backoff_until_it_succeeds(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    policy = RetryPolicy(max_retries=3, backoff_ms=1000, backoff_max_ms=1500)
    await store.replace_workflow(workflow(retry=policy))
    made = await store.enqueue(webhook(priority=Priority.NORMAL))
    assert await claim_ids(store) == [made.run_id]
    await finish(store, made.run_id, ExitReason(Reason.CRASH, "ExitError"))

    page = await store.list_runs(RunFilter(work_order_id=made.work_order_id))
    retry, first = page.items
    assert (retry.attempt, retry.retry_of, retry.state) == (2, made.run_id, RunState.AVAILABLE)
    assert (retry.dataclip_id, retry.snapshot_id) == (first.dataclip_id, first.snapshot_id)
    assert (retry.queue, retry.priority) == ("manual", Priority.IMMEDIATE)
    assert retry.not_before == clock.now() + timedelta(seconds=1)
    assert (await store.get_work_order(made.work_order_id)).state is RunState.AVAILABLE
    assert await claim_ids(store) == []  # not before its backoff
    assert await store.queue_depth() == {}
    clock.advance(seconds=1)
    assert await store.queue_depth() == {"manual": 1}
    assert await claim_ids(store) == [retry.id]
    await finish(store, retry.id, ExitReason(Reason.KILL, "TimeoutError"))

    third = (await store.list_runs(RunFilter(work_order_id=made.work_order_id))).items[0]
    assert (third.attempt, third.retry_of) == (3, retry.id)
    assert third.not_before == clock.now() + timedelta(seconds=1.5)  # 2 s, capped at 1.5 s
    clock.advance(seconds=2)
    assert await claim_ids(store) == [third.id]
    await finish(store, third.id)
    runs = (await store.list_runs(RunFilter(work_order_id=made.work_order_id))).items
    assert [(run.attempt, run.state) for run in runs] == [
        (3, RunState.SUCCESS),
        (2, RunState.KILLED),
        (1, RunState.CRASHED),
    ]
    assert (await store.get_work_order(made.work_order_id)).state is RunState.SUCCESS


@pytest.mark.parametrize(
    ("policy", "reason", "retried"),
    [
        (RetryPolicy(max_retries=1), Reason.CRASH, True),
        (RetryPolicy(max_retries=0), Reason.CRASH, False),
        (RetryPolicy(max_retries=1), Reason.FAIL, False),
        (RetryPolicy(max_retries=1, on_fail=True), Reason.FAIL, True),
        (RetryPolicy(max_retries=1), Reason.EXCEPTION, False),
        (RetryPolicy(max_retries=1), Reason.CANCEL, False),
        (RetryPolicy(max_retries=1), Reason.SUCCESS, False),
    ],
)
async def test_which_endings_are_retried(
    store: SQLStore, policy: RetryPolicy, reason: Reason, retried: bool
) -> None:
    await seed(store)
    await store.replace_workflow(workflow(retry=policy))
    made = await store.enqueue(webhook())
    await store.claim(1)
    await finish(store, made.run_id, ExitReason(reason))
    runs = (await store.list_runs(RunFilter(work_order_id=made.work_order_id))).items
    assert len(runs) == (2 if retried else 1)


async def test_a_lost_run_is_retried_and_the_last_attempt_is_not(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    await store.replace_workflow(workflow(retry=RetryPolicy(max_retries=1, backoff_ms=10)))
    made = await store.enqueue(webhook(options=Options(run_timeout_ms=1000)))
    await store.claim(1)
    clock.advance(seconds=12)
    [lost] = await store.mark_lost()
    retry = (await store.list_runs(RunFilter(work_order_id=made.work_order_id))).items[0]
    assert (lost.id, retry.retry_of, retry.attempt) == (made.run_id, made.run_id, 2)
    clock.advance(seconds=1)
    assert await claim_ids(store) == [retry.id]
    clock.advance(seconds=12)
    assert [run.id for run in await store.mark_lost()] == [retry.id]
    assert len((await store.list_runs(RunFilter(work_order_id=made.work_order_id))).items) == 2
    assert (await store.get_work_order(made.work_order_id)).state is RunState.LOST


# -- issue 8: reruns and versions -----------------------------------------------------------------


async def ran_two_steps(store: SQLStore) -> Enqueued:
    """A run of w whose steps s1 (j1, the webhook input) and s2 (j2, s1's output) succeeded."""
    made = await store.enqueue(webhook({"patient": 7}))
    await store.claim(1)
    await store.join_run(made.run_id)
    await store.start_run(made.run_id)
    await store.start_step(made.run_id, StepStart("s1", "j1", made.dataclip_id))
    await store.complete_step(made.run_id, StepCompletion("s1", SUCCESS, "out-1", {"n": 1}))
    await store.start_step(made.run_id, StepStart("s2", "j2", "out-1"))
    await store.complete_step(made.run_id, StepCompletion("s2", SUCCESS, "out-2", {"n": 2}))
    await store.complete_run(made.run_id, RunCompletion(SUCCESS, "out-2"))
    return made


async def test_a_rerun_from_the_second_step_replays_its_stored_input(store: SQLStore) -> None:
    await seed(store)
    made = await ran_two_steps(store)
    current = await store.replace_workflow(workflow(name="v2"))

    again = await store.rerun(RerunRequest(step_id="s2"))
    run = (await store.get_run(again.run_id)).run
    assert (again.work_order_id, run.work_order_id) == (made.work_order_id, made.work_order_id)
    assert (run.starting_node_id, run.dataclip_id, run.rerun_of) == ("j2", "out-1", made.run_id)
    assert (run.snapshot_id, run.snapshot_version) == (current.snapshot_id, 2)
    assert (run.queue, run.priority, run.attempt) == ("manual", Priority.IMMEDIATE, 1)
    assert (await store.get_plan(again.run_id))["starting_node_id"] == "j2"
    assert (await store.get_work_order(made.work_order_id)).state is RunState.AVAILABLE

    by_job = await store.rerun(RerunRequest(work_order_id=made.work_order_id, job_id="j2"))
    assert (await store.get_run(by_job.run_id)).run.dataclip_id == "out-1"
    from_start = await store.rerun(RerunRequest(work_order_id=made.work_order_id))
    start = (await store.get_run(from_start.run_id)).run
    assert (start.starting_node_id, start.dataclip_id) == ("t", made.dataclip_id)


async def test_a_rerun_that_cannot_be_made_writes_nothing(store: SQLStore) -> None:
    await seed(store)
    made = await ran_two_steps(store)
    await store.wipe_dataclip("out-1")
    with pytest.raises(ConflictError) as info:
        await store.rerun(RerunRequest(step_id="s2"))
    assert info.value.code == "dataclip_wiped"
    cases: list[tuple[type[Exception], RerunRequest]] = [
        (NotFoundError, RerunRequest(step_id="nope")),
        (NotFoundError, RerunRequest(work_order_id="nope")),
        (NotFoundError, RerunRequest(work_order_id=made.work_order_id, job_id="no-job")),
        (InputError, RerunRequest(step_id="s1", job_id="j1")),
        (InputError, RerunRequest()),
    ]
    for error, request in cases:
        with pytest.raises(error):
            await store.rerun(request)
    # a missing work order is named as missing, with or without a job (issue 21)
    with pytest.raises(NotFoundError, match=r"^work order nope does not exist$"):
        await store.rerun(RerunRequest(work_order_id="nope", job_id="j2"))
    await store.replace_workflow(workflow(jobs=workflow().jobs[:1], edges=workflow().edges[:1]))
    with pytest.raises(NotFoundError, match="current version"):
        await store.rerun(RerunRequest(step_id="s2"))
    runs = await store.list_runs(RunFilter(work_order_id=made.work_order_id))
    assert [run.id for run in runs.items] == [made.run_id]


async def test_each_run_records_the_version_it_runs(store: SQLStore) -> None:
    await seed(store)
    first = await store.enqueue(webhook())
    await store.replace_workflow(workflow(name="v2"), expected_version=1)
    second = await store.enqueue(webhook())
    versions = {run.id: run.snapshot_version for run in (await store.list_runs()).items}
    assert versions == {first.run_id: 1, second.run_id: 2}
    assert (await store.get_run(first.run_id)).run.snapshot_version == 1


# -- issue 8: the cron cursor ---------------------------------------------------------------


async def fire(store: SQLStore, clock: FakeClock, trigger: WorkflowTrigger) -> str | None:
    """Fire one tick of ``trigger`` now; the input dataclip of its run."""
    due = clock.now()
    await store.set_cron_cursor(trigger.id, "* * * * *", "UTC", due)
    tick = CronTick(
        trigger_id=trigger.id,
        expression="* * * * *",
        timezone="UTC",
        due_at=due,
        next_fire_at=due + timedelta(minutes=1),
        run=EnqueueRequest(workflow_id="w", trigger_id=trigger.id),
        cron_cursor=trigger.cron_cursor,
        cron_cursor_job_id=trigger.cron_cursor_job_id,
    )
    made = await store.fire_cron(tick)
    assert made is not None
    await store.claim(1, ["*"])  # out of the way
    return made.dataclip_id


async def test_a_cron_cursor_starts_each_run_from_the_last_success(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    by_run = WorkflowTrigger(
        "tc", TriggerType.CRON, cron_expression="* * * * *", cron_cursor=CronCursor.LAST_RUN
    )
    by_job = WorkflowTrigger(
        "tj",
        TriggerType.CRON,
        cron_expression="* * * * *",
        cron_cursor=CronCursor.JOB,
        cron_cursor_job_id="j1",
    )
    plain = WorkflowTrigger("tn", TriggerType.CRON, cron_expression="* * * * *")
    triggers = (*workflow().triggers, by_run, by_job, plain)
    edges = tuple(Edge(f"e-{t.id}", "j1", source_trigger_id=t.id) for t in triggers[1:])
    await store.replace_workflow(workflow(triggers=triggers, edges=(*workflow().edges, *edges)))
    assert (await store.get_workflow("w")).workflow.triggers == triggers

    assert await fire(store, clock, by_run) is None  # the first run starts from {}
    assert await fire(store, clock, by_job) is None
    await ran_two_steps(store)
    failed = await store.enqueue(webhook())
    await store.claim(1, ["*"])
    await finish(store, failed.run_id, ExitReason(Reason.FAIL))  # a failure changes nothing
    clock.advance(minutes=1)
    assert await fire(store, clock, by_run) == "out-2"
    assert await fire(store, clock, by_job) == "out-1"
    assert await fire(store, clock, plain) is None


async def test_a_cron_cursor_is_checked_when_saved(store: SQLStore) -> None:
    await seed(store)
    bad = [
        WorkflowTrigger(
            "tc", TriggerType.CRON, cron_expression="@daily", cron_cursor=CronCursor.JOB
        ),
        WorkflowTrigger(
            "tc",
            TriggerType.CRON,
            cron_expression="@daily",
            cron_cursor=CronCursor.JOB,
            cron_cursor_job_id="not-a-job",
        ),
        WorkflowTrigger("tc", cron_cursor=CronCursor.LAST_RUN),
    ]
    for trigger in bad:
        with pytest.raises(InputError, match="cron_cursor"):
            await store.replace_workflow(workflow(triggers=(*workflow().triggers, trigger)))


# -- issue 8: webhook authentication --------------------------------------------------------


async def test_webhook_auth_methods_are_sealed_listed_and_attached(
    store: SQLStore, backend: Backend
) -> None:
    await seed(store)
    api = await store.create_webhook_auth_method(
        NewWebhookAuthMethod("m1", "p", "partner", WebhookAuthType.API)
    )
    assert api.api_key is not None and len(api.api_key) == 64  # made here, shown once
    basic = await store.create_webhook_auth_method(
        NewWebhookAuthMethod(
            "m2", "p", "legacy", WebhookAuthType.BASIC, username="hook", password=SECRET
        )
    )
    listed = await store.list_webhook_auth_methods("p")
    assert [(m.id, m.auth_type, m.api_key) for m in listed] == [
        ("m2", WebhookAuthType.BASIC, None),
        ("m1", WebhookAuthType.API, None),
    ]
    assert await store.get_webhook_auth_method("m2") == replace(basic, api_key=None)
    raw = await raw_rows(backend, "SELECT sealed_secret FROM webhook_auth_methods")
    assert raw and not any(
        secret.encode() in bytes(row[0]) for row in raw for secret in (api.api_key, SECRET, "hook")
    )

    assert await store.get_webhook_secrets("t") == []  # open until a method is attached
    attached = await store.set_trigger_auth_methods("t", ["m1", "m2", "m1"])
    assert [m.id for m in attached] == ["m2", "m1"]
    opened = {s.method_id: s for s in await store.get_webhook_secrets("t")}
    assert opened["m1"].api_key == api.api_key
    assert (opened["m2"].username, opened["m2"].password) == ("hook", SECRET)
    assert [m.id for m in await store.set_trigger_auth_methods("t", ["m2"])] == ["m2"]
    assert [m.id for m in await store.list_trigger_auth_methods("t")] == ["m2"]

    # A workflow save keeps the trigger's methods; a method deleted leaves its triggers.
    await store.replace_workflow(workflow(name="v2"))
    assert [m.id for m in await store.list_trigger_auth_methods("t")] == ["m2"]
    await store.delete_webhook_auth_method("m2")
    assert await store.get_webhook_secrets("t") == []


async def test_a_join_reads_its_run_and_its_triggers_secrets_at_once(store: SQLStore) -> None:
    await seed(store)
    run_id = await claimed_run(store)
    api = await store.create_webhook_auth_method(
        NewWebhookAuthMethod("m1", "p", "partner", WebhookAuthType.API)
    )
    await store.set_trigger_auth_methods("t", ["m1"])

    run, secrets = await store.peek_run_and_secrets(run_id, ["t", "no-such-trigger"])
    assert run == await store.peek_run(run_id)
    assert [(s.method_id, s.api_key) for s in secrets] == [("m1", api.api_key)]
    assert (await store.peek_run_and_secrets(run_id, []))[1] == []
    with pytest.raises(NotFoundError):
        await store.peek_run_and_secrets("no-such-run", ["t"])


async def test_what_webhook_auth_refuses(store: SQLStore) -> None:
    await seed(store)
    await store.create_project(Project(id="q", name="Other"))
    await store.create_webhook_auth_method(
        NewWebhookAuthMethod("mq", "q", "q's", WebhookAuthType.API)
    )
    await store.create_webhook_auth_method(
        NewWebhookAuthMethod("m1", "p", "a", WebhookAuthType.API)
    )
    bad: list[tuple[type[Exception], NewWebhookAuthMethod]] = [
        (ConflictError, NewWebhookAuthMethod("m1", "p", "again", WebhookAuthType.API)),
        (ConflictError, NewWebhookAuthMethod("m9", "p", "a", WebhookAuthType.API)),
        (NotFoundError, NewWebhookAuthMethod("m9", "nope", "x", WebhookAuthType.API)),
        (InputError, NewWebhookAuthMethod("m9", "p", "x", WebhookAuthType.API, api_key="short")),
        (InputError, NewWebhookAuthMethod("m9", "p", "x", WebhookAuthType.BASIC, username="u")),
        (
            InputError,
            NewWebhookAuthMethod(
                "m9", "p", "x", WebhookAuthType.BASIC, username="u", password="7chars!"
            ),
        ),
        (InputError, NewWebhookAuthMethod("m9", "p", "x", "bearer")),  # type: ignore[arg-type]
    ]
    for error, method in bad:
        with pytest.raises(error):
            await store.create_webhook_auth_method(method)
    with pytest.raises(NotFoundError):
        await store.set_trigger_auth_methods("t", ["mq"])  # another project's
    with pytest.raises(NotFoundError):
        await store.set_trigger_auth_methods("nope", ["m1"])
    assert await store.list_trigger_auth_methods("t") == []


# -- issue 8: retention and privacy ---------------------------------------------------------


async def sweep(store: SQLStore, project_id: str = "p", limit: int = 1) -> tuple[int, int, int]:
    """The whole sweep, ``limit`` rows at a time: (work orders, dataclips deleted, wiped)."""
    totals = [0, 0, 0]
    while True:
        batch = await store.sweep_retention(project_id, limit=limit)
        for i, n in enumerate(
            (batch.deleted_work_orders, batch.deleted_dataclips, batch.wiped_dataclips)
        ):
            totals[i] += n
        if not batch.more:
            return totals[0], totals[1], totals[2]


async def test_retention_sweeps_old_history_and_bodies(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    old = await ran_two_steps(store)  # 40 days ago, by the end
    waiting = await store.enqueue(webhook())  # 40 days ago and still running: kept whole
    reran = await store.enqueue(webhook())
    assert await claim_ids(store, 1) == [waiting.run_id]
    await store.join_run(waiting.run_id)
    assert await claim_ids(store, 1) == [reran.run_id]
    await finish(store, reran.run_id)
    clock.advance(days=30)
    middle = await store.enqueue(webhook())  # 10 days ago by the end: body wiped, kept
    assert await claim_ids(store, 1) == [middle.run_id]
    await finish(store, middle.run_id)
    clock.advance(days=9)
    await store.rerun(RerunRequest(work_order_id=reran.work_order_id))  # keeps its work order
    clock.advance(days=1)
    recent = await store.enqueue(webhook())
    await store.replace_project(
        Project(id="p", name="Clinic", history_retention_period=30, dataclip_retention_period=7)
    )
    assert [p.id for p in await store.projects_with_retention()] == ["p"]

    orders, deleted, wiped = await sweep(store)
    assert orders == 1  # old's work order, with its run, steps and logs
    for gone in (store.get_work_order(old.work_order_id), store.get_run(old.run_id)):
        with pytest.raises(NotFoundError):
            await gone
    for kept in (waiting, reran, middle, recent):
        await store.get_work_order(kept.work_order_id)
    assert (await store.get_dataclip(middle.dataclip_id or "")).wiped_at == clock.now()
    assert (await store.get_dataclip(recent.dataclip_id or "")).body == {"n": 1}
    assert (await store.get_dataclip(waiting.dataclip_id or "")).body == {"n": 1}  # still needed
    with pytest.raises(NotFoundError):
        await store.get_dataclip("out-1")
    assert deleted >= 3 and wiped >= 1
    assert await sweep(store) == (0, 0, 0)  # nothing left to do


async def test_a_retention_batch_wipes_as_many_bodies_as_fit_its_bytes(
    store: SQLStore, clock: FakeClock
) -> None:
    """A batch's size does not follow its bodies' (store/batches.py): it takes as many as fit
    its bytes, oldest first, and always one, however large."""
    await seed(store)
    for n in range(5):
        made = await store.enqueue(webhook({"report": "x" * 990, "n": n}))  # 1,009 bytes
        assert await claim_ids(store, 1) == [made.run_id]
        await finish(store, made.run_id)
        clock.advance(seconds=1)
    await store.replace_project(Project(id="p", name="Clinic", dataclip_retention_period=1))
    clock.advance(days=2)
    wiped = [
        (await store.sweep_retention("p", max_bytes=max_bytes)).wiped_dataclips
        for max_bytes in (2_500, 1, 2_500)
    ]
    assert wiped == [2, 1, 2]
    assert not (await store.sweep_retention("p")).more


async def test_a_retention_batch_takes_as_many_work_orders_as_their_logs_fit(
    store: SQLStore, clock: FakeClock
) -> None:
    """Work orders go with their runs' logs, whose bytes bound a batch as bodies do; a frame
    sent again (its reply lost) counts once."""
    await seed(store)
    for n in range(3):
        made = await store.enqueue(webhook({"n": n}))
        assert await claim_ids(store, 1) == [made.run_id]
        frame = [log("x" * 1_000, clock)]
        for _ in range(2):
            await store.append_logs(made.run_id, frame, once=True)
        await finish(store, made.run_id)
        clock.advance(seconds=1)
    await store.replace_project(Project(id="p", name="Clinic", history_retention_period=1))
    clock.advance(days=2)
    orders = [
        (await store.sweep_retention("p", max_bytes=max_bytes)).deleted_work_orders
        for max_bytes in (1_500, 2_000)
    ]
    assert orders == [1, 2]


async def test_deleting_a_project_or_a_workflow_goes_a_bounded_batch_at_a_time(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their history goes first, a transaction per batch of a few rows and bytes (so that
    other writers get in between and no transaction holds every body), then the rest: nothing
    of it is left."""
    monkeypatch.setattr(catalog, "BATCH_ROWS", 2)
    monkeypatch.setattr(catalog, "BATCH_BYTES", 1)
    workflow_batches: list[int] = []
    project_batches: list[int] = []
    for name, batches in [
        ("delete_workflow_history", workflow_batches),
        ("delete_project_history", project_batches),
    ]:
        monkeypatch.setattr(catalog, name, noting_results(getattr(catalog, name), batches))
    await seed(store)
    made = [await store.enqueue(webhook({"n": n})) for n in range(3)]
    await store.delete_workflow("w")
    assert workflow_batches == [2, 1, 0]
    for run in made:
        with pytest.raises(NotFoundError):
            await store.get_run(run.run_id)
    await store.get_dataclip(made[0].dataclip_id or "")  # a project's, until it goes
    await store.create_workflow(workflow())
    again = [await store.enqueue(webhook({"n": n})) for n in range(3)]
    await store.delete_project("p")
    # 3 work orders, then 6 dataclips one at a time
    assert project_batches == [2, 1, 1, 1, 1, 1, 1, 1, 0]
    for enqueued in made + again:
        with pytest.raises(NotFoundError):
            await store.get_dataclip(enqueued.dataclip_id or "")
    assert (await store.list_runs()).items == ()
    with pytest.raises(NotFoundError):
        await store.get_project("p")
    with pytest.raises(NotFoundError):
        await store.delete_project("p")


async def test_erase_all_keeps_no_bodies_beyond_their_use(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    await store.replace_project(
        Project(id="p", name="Clinic", retention_policy=RetentionPolicy.ERASE_ALL)
    )
    await store.replace_workflow(workflow(retry=RetryPolicy(max_retries=1, backoff_ms=10)))
    made = await store.enqueue(webhook({"secret": SECRET}))
    run = (await store.get_run(made.run_id)).run
    assert run.options.output_dataclips is False  # the worker sends no outputs
    assert (await store.get_plan(made.run_id))["options"]["output_dataclips"] is False
    await store.claim(1)
    await finish(store, made.run_id, ExitReason(Reason.CRASH))
    # its retry will need the input: kept
    assert (await store.get_dataclip(made.dataclip_id or "")).body == {"secret": SECRET}
    clock.advance(seconds=1)
    [retry] = await store.claim(1)
    await finish(store, retry.id)
    clip = await store.get_dataclip(made.dataclip_id or "")
    assert (clip.body, clip.request, clip.wiped_at) == (None, None, clock.now())
    # A run cancelled in the queue does not keep its input either.
    cancelled = await store.enqueue(webhook({"secret": SECRET}))
    await store.cancel_run(cancelled.run_id)
    assert (await store.get_dataclip(cancelled.dataclip_id or "")).body is None


async def test_retention_settings_are_checked(store: SQLStore) -> None:
    await seed(store)
    for bad in (
        Project(id="p", name="x", history_retention_period=7, dataclip_retention_period=14),
        Project(id="p", name="x", history_retention_period=0),
        Project(id="p", name="x", retention_policy="keep_some"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InputError):
            await store.replace_project(bad)
    with pytest.raises(InputError):
        await store.sweep_retention("p", limit=0)


async def raw_rows(backend: Backend, query: str) -> list[tuple[object, ...]]:
    if backend.conninfo is None:
        with sqlite3.connect(sqlite_path(backend.url)) as conn:
            return list(conn.execute(query).fetchall())
    async with await psycopg.AsyncConnection.connect(backend.conninfo) as pg:
        return list(await (await pg.execute(query)).fetchall())


# -- opening -------------------------------------------------------------------------------


async def test_reopening_and_concurrent_opening_migrate_once(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    await seed(store)
    stores = await asyncio.gather(*(open_store(backend.url, credential_key=KEY) for _ in range(3)))
    for other in stores:
        assert (await other.get_workflow("w")).version == 1
        await other.close()


async def test_first_opens_at_once_migrate_once(backend: Backend, clock: FakeClock) -> None:
    """Two (here three) coordinators starting together on a new database."""
    opens = await asyncio.gather(
        *(open_store(backend.url, clock=clock) for _ in range(3)), return_exceptions=True
    )
    for opened in opens:
        if isinstance(opened, SQLStore):
            await opened.close()
    assert all(isinstance(opened, SQLStore) for opened in opens), opens
    query = "SELECT version FROM schema_version"
    if backend.conninfo is None:
        with sqlite3.connect(sqlite_path(backend.url)) as conn:
            versions = conn.execute(query).fetchall()
    else:
        with psycopg.connect(backend.conninfo) as pg:
            versions = pg.execute(query).fetchall()
    # each schema file applied exactly once
    assert [row[0] for row in versions] == [v for v, _, _ in load_schema(backend.name)]


async def test_bad_store_urls_are_refused(tmp_path: Path) -> None:
    for url in ("mysql://x", "sqlite:///", "sqlite:///:memory:", str(tmp_path)):
        with pytest.raises(ConfigError):
            await open_store(url)


def test_both_dialects_define_the_same_queries() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sorted(sqlite) == sorted(postgres)
    assert all(query.sql for query in (*sqlite.values(), *postgres.values()))


def test_query_files_are_parsed_strictly() -> None:
    queries = parse_queries("-- name: a\n-- What a does.\nSELECT 1;\n\n-- name: b\nSELECT 2")
    assert [(q.name, q.doc, q.sql) for q in queries.values()] == [
        ("a", "What a does.", "SELECT 1"),
        ("b", "", "SELECT 2"),
    ]
    for broken in ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "-- name: a\n-- only words\n"):
        with pytest.raises(ConfigError):
            parse_queries(broken)


# -- runs routed by the languages their jobs are in (issue 15) ---------------------------------

COMMON_JS = "@openfn/language-common@3.3.4"


def scripted_workflow(workflow_id: str, *languages: str) -> Workflow:
    """A workflow of one job per language given, in a chain from its webhook."""
    jobs = tuple(
        Job(
            id=f"{workflow_id}-{i}",
            body="fn(state => state)" if language == JAVASCRIPT else "fn(lambda s: s)",
            adaptor=COMMON_JS if language == JAVASCRIPT else "common",
            language=language,
        )
        for i, language in enumerate(languages)
    )
    edges = [Edge(f"{workflow_id}-t", jobs[0].id, source_trigger_id=f"t-{workflow_id}")]
    edges += [Edge(f"{a.id}>{b.id}", b.id, source_job_id=a.id) for a, b in itertools.pairwise(jobs)]
    return other_workflow(workflow_id, jobs=jobs, edges=tuple(edges))


async def languages_claim(store: SQLStore, languages: Sequence[str], demand: int = 10) -> list[str]:
    return [r.id for r in await store.claim(demand, ["*"], "pod", languages=languages)]


async def test_a_claim_takes_only_runs_whose_every_job_the_worker_runs(store: SQLStore) -> None:
    await seed(store)
    await store.create_workflow(scripted_workflow("py", PYTHON))
    await store.create_workflow(scripted_workflow("js", JAVASCRIPT))
    await store.create_workflow(scripted_workflow("mixed", JAVASCRIPT, PYTHON))
    py = await enqueue_to(store, "py", 2)
    js = await enqueue_to(store, "js", 2)
    mixed = await enqueue_to(store, "mixed", 2)
    runs = {run_id: await store.get_run(run_id) for run_id in [*py, *js, *mixed]}
    assert [runs[r].run.languages for r in (py[0], js[0], mixed[0])] == [
        ("python",),
        ("javascript",),
        ("python", "javascript"),
    ]

    # OpenFn's ws-worker runs JavaScript only; a Fulmen worker without Node, Python only.
    assert await languages_claim(store, ["javascript"]) == js
    assert await languages_claim(store, ["python"]) == py
    assert await languages_claim(store, ["python"]) == []  # the mixed ones wait...
    assert await languages_claim(store, ["python", "javascript"]) == mixed  # ...for this one


async def test_routing_keeps_the_claim_s_order_among_runs_it_may_take(store: SQLStore) -> None:
    await seed(store)
    await store.create_workflow(scripted_workflow("py", PYTHON))
    await store.create_workflow(scripted_workflow("js", JAVASCRIPT))
    first_js = await enqueue_to(store, "js")
    normal_py = await enqueue_to(store, "py", priority=Priority.NORMAL)
    manual_py = await enqueue_to(store, "py", queue="manual")
    second_js = await enqueue_to(store, "js")

    both = [r.id for r in await store.claim(10, ["manual", "*"], "pod", languages=LANGUAGES)]
    assert both == manual_py + first_js + second_js + normal_py


async def test_a_rationed_workflow_s_next_run_is_not_passed_over_for_language(
    store: SQLStore,
) -> None:
    """Under a limit a workflow's runs go strictly in its order: its next run, which needs
    JavaScript, holds the later Python-only one back from a Python worker."""
    await seed(store)
    await store.create_workflow(scripted_workflow("w3", JAVASCRIPT, PYTHON))
    [js_first] = await enqueue_to(store, "w3")
    await store.replace_workflow(replace(scripted_workflow("w3", PYTHON), concurrency=1))
    [py_later] = await enqueue_to(store, "w3")

    assert await languages_claim(store, ["python"]) == []
    assert await languages_claim(store, ["javascript", "python"]) == [js_first]
    await finish(store, js_first)
    assert await languages_claim(store, ["python"]) == [py_later]


async def test_a_retry_and_a_rerun_need_the_languages_of_their_versions(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    retried = RetryPolicy(max_retries=1, backoff_ms=1, backoff_max_ms=1)
    await store.create_workflow(replace(scripted_workflow("js", JAVASCRIPT), retry=retried))
    [run_id] = await enqueue_to(store, "js")
    [claimed] = await store.claim(1, ["*"], "pod", languages=[JAVASCRIPT])
    await finish(store, claimed.id, ExitReason(Reason.CRASH, "RuntimeCrash", "x"))

    clock.advance(seconds=1)  # past the retry's backoff
    assert await languages_claim(store, ["python"]) == []  # its retry is JavaScript too
    [retry] = await languages_claim(store, ["javascript"])
    assert (await store.get_run(retry)).run.retry_of == run_id
    work_order = (await store.get_run(run_id)).run.work_order_id
    rerun = await store.rerun(RerunRequest(work_order_id=work_order))
    assert (await store.get_run(rerun.run_id)).run.languages == ("javascript",)


# -- Python jobs' packages, pinned (issue 16) -------------------------------------------------

PINS = ("httpx==0.28.1", "fulmen-adaptor-demo[extra]==0.1.0")
PINNED = (
    Job(id="j1", body="x = 1", adaptor="fulmen-probe@2.0.0", language=PY, requirements=PINS),
    Job(id="j2", name="count", body="fn(count)", adaptor="common", language=PY),
)


async def test_a_python_job_s_pins_are_kept_by_each_version_and_sent_in_its_plan(
    store: SQLStore,
) -> None:
    await seed(store)
    pinned = workflow(jobs=tuple(replace(job, credential_id=None) for job in PINNED))
    saved = await store.replace_workflow(pinned)
    assert [job.requirements for job in saved.workflow.jobs] == [
        ("httpx==0.28.1", "fulmen-adaptor-demo[extra]==0.1.0"),
        (),
    ]
    made = await store.enqueue(webhook())
    bare = replace(pinned.jobs[0], requirements=())
    await store.replace_workflow(replace(pinned, jobs=(bare, pinned.jobs[1])))
    # the run of the pinned version is handed out with that version's pins
    plan = await store.get_plan(made.run_id)
    assert [(job["adaptor"], job.get("requirements")) for job in plan["jobs"]] == [
        ("fulmen-probe@2.0.0", ["httpx==0.28.1", "fulmen-adaptor-demo[extra]==0.1.0"]),
        ("common", None),
    ]
    assert Plan.from_wire(plan).jobs[0].requirements == PINNED[0].requirements
    snapshot = await store.get_snapshot(saved.snapshot_id)
    assert snapshot.workflow.jobs[0].requirements == PINNED[0].requirements
    assert (await store.get_workflow("w")).workflow.jobs[0].requirements == ()


@pytest.mark.parametrize(
    ("adaptor", "requirements", "code", "field"),
    [
        ("fulmen-probe@latest", (), "unresolved_adaptor", "jobs[1].adaptor"),
        ("fulmen-probe@>=1,<2", (), "unresolved_adaptor", "jobs[1].adaptor"),
        ("common", ("httpx==0.28.1", "rich>=13"), "unresolved_requirement", "requirements[1]"),
        ("common", ("httpx @ https://example.org/h.whl",), "bad_requirement", "requirements[0]"),
        ("not a module", (), "bad_adaptor", "jobs[1].adaptor"),
    ],
)
async def test_a_python_job_whose_packages_are_not_exact_is_not_saved(
    store: SQLStore, adaptor: str, requirements: tuple[str, ...], code: str, field: str
) -> None:
    """No plan reaches a worker unresolved: the coordinator pins before it saves, and the
    store refuses what is not pinned (whoever saves)."""
    await store.create_project(Project(id="p", name="Clinic"))
    jobs = (
        Job(id="a", body="x = 1", adaptor="common", language=PY),
        Job(id="b", body="x = 1", adaptor=adaptor, language=PY, requirements=requirements),
    )
    with pytest.raises(InputError) as refused:
        await store.create_workflow(workflow(jobs=jobs, edges=(), triggers=()))
    assert refused.value.code == code
    assert refused.value.field in (field, f"jobs[1].{field}")
    assert refused.value.message.startswith("job b: ")
    with pytest.raises(NotFoundError):
        await store.get_workflow("w")


async def test_pins_two_python_jobs_cannot_share_or_a_javascript_job_s_are_refused(
    store: SQLStore,
) -> None:
    await store.create_project(Project(id="p", name="Clinic"))
    clashing = (
        Job(id="a", body="x = 1", adaptor="fulmen-probe@1.0.0", language=PY),
        Job(id="b", body="x = 1", adaptor="common", language=PY, requirements=("fulmen_probe==2",)),
    )
    with pytest.raises(InputError) as refused:
        await store.create_workflow(workflow(jobs=clashing, edges=(), triggers=()))
    assert refused.value.code == "conflicting_requirements"
    script = Job(
        id="js", body="fn(s => s)", adaptor=COMMON_JS, language=JAVASCRIPT, requirements=("x==1",)
    )
    with pytest.raises(InputError) as refused:
        await store.create_workflow(workflow(jobs=(script,), edges=(), triggers=()))
    assert (refused.value.code, refused.value.field) == ("bad_requirement", "jobs[0].requirements")
