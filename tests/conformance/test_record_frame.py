"""``Store.record_frame`` (issue 20): a worker's frame of reports in one transaction, on both
backends: stored as its reports one by one would be, and all or nothing."""

from __future__ import annotations

import pytest

from fulmen.errors import NotFoundError, TransitionError
from fulmen.lifecycle import RunState, StepState
from fulmen.store import RunCompletion, RunStart, SQLStore, StepCompletion, StepStart
from fulmen_testing.clock import FakeClock

from .test_store import SUCCESS, claimed_run, log, seed

pytestmark = pytest.mark.anyio


async def joined_run(store: SQLStore) -> str:
    run_id = await claimed_run(store)
    await store.join_run(run_id)
    return run_id


async def test_a_whole_run_in_one_frame_is_stored_as_its_reports_one_by_one(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    run_id = await joined_run(store)
    lines = [log("hello", clock, step_id="s1"), log("bye", clock)]
    reports = [
        RunStart(),
        StepStart("s1", "j1"),
        StepCompletion("s1", SUCCESS, output_dataclip_id="out", output={"n": 1}),
        RunCompletion(SUCCESS, final_dataclip_id="out"),
    ]
    await store.record_frame(run_id, reports, lines)
    detail = await store.get_run(run_id)
    assert (detail.run.state, detail.run.started_at) == (RunState.SUCCESS, clock.now())
    assert [(step.id, step.state) for step in detail.steps] == [("s1", StepState.SUCCESS)]
    assert (await store.get_dataclip("out")).body == {"n": 1}
    ids = [entry.id for entry in (await store.get_logs(run_id)).items]
    assert len(ids) == 2
    # The frame's lines are the run's last frame: sent again, they are not stored twice.
    assert sorted(await store.append_logs(run_id, lines, once=True)) == sorted(ids)


async def test_a_frame_with_a_refused_report_stores_nothing(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    run_id = await joined_run(store)
    with pytest.raises(NotFoundError):
        await store.record_frame(
            run_id, [RunStart(), StepStart("s1", "no-such-job")], [log("lost", clock)]
        )
    detail = await store.get_run(run_id)
    assert (detail.run.state, detail.steps) == (RunState.CLAIMED, ())
    assert (await store.get_logs(run_id)).items == ()
    # Each report is checked against the state the ones before it left: a second start is
    # refused as start_run refuses it after the first.
    with pytest.raises(TransitionError):
        await store.record_frame(run_id, [RunStart(), RunStart()], [])
    assert (await store.get_run(run_id)).run.state == RunState.CLAIMED


async def test_what_a_frame_wrote_itself_is_checked_as_if_read_back(
    store: SQLStore, clock: FakeClock
) -> None:
    """The steps and dataclips a frame wrote are not read back, yet refused as they would be:
    a step completed twice, a line of a step that is not the run's, a final dataclip that
    was not stored."""
    await seed(store)
    run_id = await joined_run(store)
    begun = [RunStart(), StepStart("s1", "j1")]
    done = StepCompletion("s1", SUCCESS, output_dataclip_id="out", output={"n": 1})
    with pytest.raises(TransitionError):
        await store.record_frame(run_id, [*begun, done, done], [])
    with pytest.raises(NotFoundError):
        await store.record_frame(run_id, begun, [log("elsewhere", clock, step_id="s2")])
    with pytest.raises(NotFoundError):
        await store.record_frame(run_id, [*begun, done, RunCompletion(SUCCESS, "other")], [])
    assert (await store.get_run(run_id)).run.state == RunState.CLAIMED
    await store.record_frame(run_id, [*begun, done, RunCompletion(SUCCESS, "out")], [])
    assert (await store.get_run(run_id)).run.state == RunState.SUCCESS
