"""Finding runs by text in their logs and dataclips (issue 17), with the other filters, on
SQLite and PostgreSQL: what matches, how it pages, and that each page reads a bounded window.
"""

from __future__ import annotations

import pytest

from fulmen.errors import InputError
from fulmen.lifecycle import RunState
from fulmen.reasons import ExitReason, Reason
from fulmen.store import RunCompletion, RunFilter, SQLStore, StepCompletion, StepStart, reads
from fulmen_testing.clock import FakeClock

from .test_store import claimed_run, enqueue_many, log, seed, webhook

pytestmark = pytest.mark.anyio

SUCCESS = ExitReason(Reason.SUCCESS)


async def found(store: SQLStore, where: RunFilter, limit: int = 50) -> list[str]:
    """Every run the search finds, following its cursors to the end."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list_runs(where, cursor=cursor, limit=limit)
        ids.extend(run.id for run in page.items)
        if (cursor := page.next_cursor) is None:
            return ids


async def test_text_is_found_in_log_lines_and_in_every_kind_of_dataclip(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    in_log = await claimed_run(store)
    await store.append_log(in_log, log("sent 3 patients to Kivu clinic", clock))
    in_output = await claimed_run(store)
    await store.join_run(in_output)
    await store.start_run(in_output)
    await store.start_step(in_output, StepStart("s1", "j1"))
    await store.complete_step(in_output, StepCompletion("s1", SUCCESS, "o1", {"to": "kivu"}))
    await store.complete_run(in_output, RunCompletion(SUCCESS, "o1"))
    in_input = (await store.enqueue(webhook({"clinic": "KIVU north"}))).run_id
    await enqueue_many(store, 3)  # nothing about it

    assert await found(store, RunFilter(text="kivu")) == [in_input, in_output, in_log]
    assert await found(store, RunFilter(text="Kivu clinic")) == [in_log]
    assert await found(store, RunFilter(text="nowhere")) == []


async def test_like_wildcards_in_the_text_are_matched_literally(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    percent = await claimed_run(store)
    await store.append_log(percent, log("disk 100% full", clock))
    other = await claimed_run(store)
    await store.append_log(other, log("disk 1000 full", clock))
    await store.append_log(other, log("a_b and a\\b", clock))

    assert await found(store, RunFilter(text="100%")) == [percent]
    assert await found(store, RunFilter(text="a_b")) == [other]
    assert await found(store, RunFilter(text="a\\b")) == [other]
    assert await found(store, RunFilter(text="x_y")) == []


async def test_text_combines_with_state_workflow_time_and_work_order(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    early = await claimed_run(store)
    await store.append_log(early, log("needle early", clock))
    start = clock.advance(seconds=60)
    late = await claimed_run(store)
    await store.append_log(late, log("needle late", clock))
    queued = (await store.enqueue(webhook({"note": "needle queued"}))).run_id
    work_order = (await store.get_run(queued)).run.work_order_id

    assert await found(store, RunFilter(text="needle")) == [queued, late, early]
    assert await found(store, RunFilter(text="needle", inserted_from=start)) == [queued, late]
    assert await found(store, RunFilter(text="needle", inserted_until=start)) == [early]
    available = frozenset({RunState.AVAILABLE})
    assert await found(store, RunFilter(text="needle", states=available)) == [queued]
    assert await found(store, RunFilter(text="needle", work_order_id=work_order)) == [queued]
    assert await found(store, RunFilter(text="needle", workflow_id="other")) == []
    assert await found(store, RunFilter(text="needle", project_id="p")) == [queued, late, early]


async def test_pages_are_keyset_and_a_window_bounds_each_page(
    store: SQLStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a window of 4 runs, a rare match deep in the history is reached page by page:
    pages with no runs in them, each with a cursor, until the match and then the end."""
    await seed(store)
    rare = await claimed_run(store)
    await store.append_log(rare, log("the rare word", clock))
    common = []
    for _ in range(5):
        run_id = await claimed_run(store)
        await store.append_log(run_id, log("common word", clock))
        common.append(run_id)
    await enqueue_many(store, 6)  # newest: no match
    monkeypatch.setattr(reads, "SEARCH_WINDOW", 4)

    first = await store.list_runs(RunFilter(text="rare"), limit=2)
    assert first.items == () and first.next_cursor is not None  # looked at 4, more to look at
    assert await found(store, RunFilter(text="rare"), limit=2) == [rare]
    everything = await found(store, RunFilter(text="word"), limit=2)
    assert everything == [*reversed(common), rare]


async def test_a_search_too_long_or_a_bad_cursor_is_refused(store: SQLStore) -> None:
    await seed(store)
    with pytest.raises(InputError) as refused:
        await store.list_runs(RunFilter(text="x" * (reads.MAX_SEARCH_TEXT + 1)))
    assert refused.value.code == "search_too_long"
    with pytest.raises(InputError):
        await store.list_runs(RunFilter(text="x"), cursor="not-a-cursor")
