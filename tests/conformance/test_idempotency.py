"""Idempotency keys in the store (issue 14), on SQLite and PostgreSQL: a request made again
with its key gets the first answer and makes nothing; the key is written with the run or not
at all; two requests with one key, from two stores on one database (two coordinators), make
one run, the second waiting for the first's transaction; expired keys are taken over and
swept."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta

import psycopg
import pytest

from fulmen.errors import ConflictError, FulmenError, InputError, NotFoundError
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    Answer,
    Answered,
    Enqueued,
    IdempotencyKey,
    RerunRequest,
    RunCompletion,
    SQLStore,
    StepCompletion,
    StepStart,
    open_store,
    sqlite_path,
)
from fulmen.store.db import to_micros
from fulmen.store.models.common import JSONValue
from fulmen_testing.clock import FakeClock

from .conftest import KEY, Backend
from .test_store import seed, webhook

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


def key(name: str = "k-1", *, scope: str = "webhook t", asked: str = "a") -> IdempotencyKey:
    return IdempotencyKey(scope=scope, key=name, fingerprint=asked, ttl=DAY)


def ids(made: Enqueued) -> Answer:
    return Answer(200, {"work_order_id": made.work_order_id, "run_id": made.run_id})


async def run_ids(store: SQLStore) -> list[str]:
    return [run.id for run in (await store.list_runs()).items]


@pytest.fixture
async def seeded(store: SQLStore) -> SQLStore:
    await seed(store)
    return store


@pytest.fixture
async def second(backend: Backend, clock: FakeClock) -> AsyncIterator[SQLStore]:
    """Another store on the same database: a second coordinator."""
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as opened:
        yield opened


async def test_a_key_used_again_gets_the_first_answer_and_makes_nothing(
    seeded: SQLStore,
) -> None:
    first = await seeded.enqueue_once(webhook(), key(), ids)
    again = await seeded.enqueue_once(webhook(), key(), ids)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.answer == first.answer
    assert isinstance(first.answer.body, dict)
    assert await run_ids(seeded) == [first.answer.body["run_id"]]


async def test_the_answer_comes_back_as_it_was_given(seeded: SQLStore) -> None:
    """Status, body (its keys in their order, nested values, nulls) and the deferred mark."""
    body: JSONValue = {"z": 1, "a": [None, {"y": True, "b": 1.5}], "run": "r"}
    made = await seeded.enqueue_once(webhook(), key(), lambda _: Answer(202, body, deferred=True))
    again = await seeded.enqueue_once(webhook(), key(), ids)

    assert again == Answered(Answer(202, body, deferred=True), replayed=True)
    assert isinstance(again.answer.body, dict)
    assert list(again.answer.body) == ["z", "a", "run"]
    assert made.answer == again.answer


async def test_the_same_key_for_another_request_is_refused_and_writes_nothing(
    seeded: SQLStore,
) -> None:
    await seeded.enqueue_once(webhook(), key(asked="a"), ids)
    with pytest.raises(InputError) as refused:
        await seeded.enqueue_once(webhook({"n": 2}), key(asked="b"), ids)

    assert refused.value.code == "idempotency_key_reused"
    assert len(await run_ids(seeded)) == 1


async def test_a_key_counts_in_its_scope_only(seeded: SQLStore) -> None:
    here = await seeded.enqueue_once(webhook(), key(scope="webhook t"), ids)
    there = await seeded.enqueue_once(webhook(), key(scope="webhook u"), ids)
    other = await seeded.enqueue_once(webhook(), key("k-2", scope="webhook t"), ids)

    assert not (here.replayed or there.replayed or other.replayed)
    assert len(await run_ids(seeded)) == 3


async def test_a_key_is_forgotten_after_its_window(seeded: SQLStore, clock: FakeClock) -> None:
    first = await seeded.enqueue_once(webhook(), key(asked="a"), ids)
    clock.advance(hours=23, minutes=59)
    assert (await seeded.enqueue_once(webhook(), key(asked="a"), ids)).replayed

    clock.advance(minutes=1)  # a day after the first use
    later = await seeded.enqueue_once(webhook({"n": 2}), key(asked="b"), ids)
    assert not later.replayed
    assert later.answer != first.answer
    # and the key now stands for the later request, for another day
    clock.advance(hours=12)
    assert (await seeded.enqueue_once(webhook({"n": 2}), key(asked="b"), ids)) == Answered(
        later.answer, replayed=True
    )
    assert len(await run_ids(seeded)) == 2


async def test_a_request_that_fails_leaves_neither_run_nor_key(seeded: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await seeded.enqueue_once(webhook(workflow_id="nope"), key(asked="a"), ids)

    def broken(_: Enqueued) -> Answer:
        raise RuntimeError("the coordinator failed before answering")

    with pytest.raises(RuntimeError):
        await seeded.enqueue_once(webhook(), key(asked="b"), broken)
    assert await run_ids(seeded) == []

    # the key was never recorded: the same key may now carry any request, once
    made = await seeded.enqueue_once(webhook(), key(asked="c"), ids)
    assert not made.replayed
    assert (await seeded.enqueue_once(webhook(), key(asked="c"), ids)).replayed
    assert len(await run_ids(seeded)) == 1


async def test_a_key_is_1_to_255_characters() -> None:
    for bad in ("", "k" * 256):
        with pytest.raises(InputError) as refused:
            key(bad)
        assert refused.value.code == "idempotency_key_invalid"
    assert key("k" * 255).key == "k" * 255


async def test_concurrent_requests_with_one_key_on_two_stores_make_one_run(
    seeded: SQLStore, second: SQLStore
) -> None:
    """Two coordinators sharing the database, each taking the same request several times at
    once: the primary key decides, not either process's memory."""
    calls = [
        store.enqueue_once(webhook(), key(), ids) for _ in range(4) for store in (seeded, second)
    ]
    answered = await asyncio.gather(*calls)

    assert sorted(a.replayed for a in answered) == [False] + [True] * 7
    assert all(a.answer == answered[0].answer for a in answered)
    assert len(await run_ids(seeded)) == 1


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_request_waits_for_the_transaction_that_holds_its_key(
    backend: Backend, seeded: SQLStore, clock: FakeClock, outcome: str
) -> None:
    """PostgreSQL: while another coordinator's transaction has written the key, a request with
    the same key waits on it; then replays its answer (committed) or makes the run itself
    (rolled back). On SQLite write transactions take turns, so there is nothing to see."""
    if backend.conninfo is None:
        pytest.skip("PostgreSQL's row-level wait; SQLite's writers take turns")
    answer = Answer(200, {"run_id": "theirs"})
    with psycopg.connect(backend.conninfo) as other:  # a transaction, left open
        other.execute(
            "INSERT INTO idempotency_keys"
            " (scope, key, fingerprint, status, body, deferred, inserted_at, expires_at)"
            " VALUES ('webhook t', 'k-1', 'a', 200, %s, false, %s, %s)",
            ('{"run_id": "theirs"}', clock.now(), clock.now() + DAY),
        )
        waiting = asyncio.get_running_loop().create_task(seeded.enqueue_once(webhook(), key(), ids))
        await _blocked_on_a_lock(backend.conninfo, waiting)
        if outcome == "commit":
            other.commit()
        else:
            other.rollback()
        answered = await waiting

    if outcome == "commit":
        assert answered == Answered(answer, replayed=True)
        assert await run_ids(seeded) == []
    else:
        assert not answered.replayed
        assert len(await run_ids(seeded)) == 1


async def _blocked_on_a_lock(conninfo: str, task: asyncio.Task[Answered]) -> None:
    """Until a session of the test's database waits for a lock (the claim of the key)."""
    async with (
        asyncio.timeout(20),
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as watcher,
    ):
        while True:
            assert not task.done(), task
            cursor = await watcher.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.01)  # polling the server's view of its sessions


async def test_reruns_under_a_key_are_made_once(seeded: SQLStore) -> None:
    made = await seeded.enqueue(webhook())
    await seeded.claim(1)
    await seeded.start_run(made.run_id)
    await seeded.start_step(made.run_id, StepStart("s1", "j1", made.dataclip_id))
    ok = ExitReason(Reason.SUCCESS)
    await seeded.complete_step(made.run_id, StepCompletion("s1", ok, "out", {"a": 1}))
    await seeded.complete_run(made.run_id, RunCompletion(ok, "out"))

    step = key(scope="POST /api/steps/s1/rerun")
    first = await seeded.rerun_once(RerunRequest(step_id="s1"), step, ids)
    again = await seeded.rerun_once(RerunRequest(step_id="s1"), step, ids)
    assert (first.replayed, again.replayed, again.answer) == (False, True, first.answer)

    def listed(made: list[Enqueued | FulmenError]) -> Answer:
        return Answer(
            201,
            [item.code if isinstance(item, FulmenError) else item.work_order_id for item in made],
        )

    bulk = key(scope="POST /api/work_orders/rerun")
    requests = [RerunRequest(work_order_id=made.work_order_id), RerunRequest(work_order_id="x")]
    many = await seeded.rerun_each_once(requests, bulk, listed)
    assert many == Answered(Answer(201, [made.work_order_id, "not_found"]), replayed=False)
    assert (await seeded.rerun_each_once(requests, bulk, listed)).replayed
    assert len(await run_ids(seeded)) == 3  # the first run, the step rerun, one bulk rerun


async def test_the_sweep_removes_expired_keys_in_batches(
    seeded: SQLStore, clock: FakeClock
) -> None:
    for n in range(5):
        await seeded.enqueue_once(webhook(), key(f"old-{n}"), ids)
    clock.advance(hours=12)
    await seeded.enqueue_once(webhook(), key("new"), ids)
    clock.advance(hours=12)  # the old ones expire now, the new one in 12 hours

    assert await seeded.sweep_idempotency_keys(limit=3) == 3
    assert await seeded.sweep_idempotency_keys(limit=3) == 2
    assert await seeded.sweep_idempotency_keys(limit=3) == 0
    assert (await seeded.enqueue_once(webhook(), key("new"), ids)).replayed
    assert not (await seeded.enqueue_once(webhook(), key("old-0"), ids)).replayed
    with pytest.raises(InputError):
        await seeded.sweep_idempotency_keys(limit=0)


async def test_a_key_in_progress_is_never_seen(
    seeded: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """Every committed key has its answer. Were one found without (written by something
    else than the store), the request is told to try again rather than answered wrongly."""
    insert = (
        "INSERT INTO idempotency_keys (scope, key, fingerprint, inserted_at, expires_at)"
        " VALUES ('webhook t', 'k-1', 'a', {now}, {expires})"
    )
    if backend.conninfo is None:
        with closing(sqlite3.connect(sqlite_path(backend.url))) as raw, raw:
            raw.execute(insert.format(now="?", expires="?"), (0, to_micros(clock.now() + DAY)))
    else:
        with psycopg.connect(backend.conninfo) as pg:
            pg.execute(insert.format(now="now()", expires="%s"), (clock.now() + DAY,))
    with pytest.raises(ConflictError) as refused:
        await seeded.enqueue_once(webhook(), key(), ids)
    assert refused.value.code == "idempotency_key_in_progress"
    assert await run_ids(seeded) == []
