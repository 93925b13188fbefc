"""Claims that come back unrun (issue 14), on SQLite and PostgreSQL: a run its worker
refused goes back to the queue at once with a note in its log, and only while that claim
holds; a claim never joined goes back with a note made from the claim as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulmen.lifecycle import RunState
from fulmen.store import LogLine, SQLStore, UnjoinedClaim
from fulmen_testing.clock import FakeClock

from .test_store import claimed_run, enqueue_many, seed, state_of

pytestmark = pytest.mark.anyio


def note(clock: FakeClock, message: str = "refused here") -> LogLine:
    return LogLine(message, timestamp=clock.now(), source="FULMEN", level="warn")


async def messages(store: SQLStore, run_id: str) -> list[tuple[str, str, str]]:
    page = await store.get_logs(run_id)
    return [(line.source, line.level, line.message) for line in page.items]


async def test_a_refused_claim_goes_back_at_once_with_its_note(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    run_id = await claimed_run(store)
    later = clock.now() + timedelta(seconds=1)

    assert await store.return_refused(run_id, claimed_before=later, note=note(clock)) is True
    run = (await store.get_run(run_id)).run
    assert (run.state, run.claimed_at, run.worker_name) == (RunState.AVAILABLE, None, None)
    assert await messages(store, run_id) == [("FULMEN", "warn", "refused here")]
    # Told twice (a resend): the claim is gone, nothing changes.
    assert await store.return_refused(run_id, claimed_before=later, note=note(clock)) is False
    assert len(await messages(store, run_id)) == 1
    assert [run.id for run in await store.claim(1)] == [run_id]  # claimable again at once


async def test_a_refusal_touches_only_the_claim_it_was_for(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    joined, reclaimed = await enqueue_many(store, 2)
    await store.claim(2, ["*"], "pod-1")
    await store.join_run(joined)  # the worker joined: it has taken the run up
    token_claimed_before = clock.now() + timedelta(seconds=1)
    await store.return_refused(reclaimed, claimed_before=token_claimed_before, note=note(clock))
    clock.advance(seconds=5)
    await store.claim(1, ["*"], "pod-2")  # claimed again, by another worker, later

    for run_id in (joined, reclaimed):
        returned = await store.return_refused(
            run_id, claimed_before=token_claimed_before, note=note(clock, "late")
        )
        assert returned is False
        assert await state_of(store, run_id) is RunState.CLAIMED
    assert ("FULMEN", "warn", "late") not in await messages(store, reclaimed)
    assert await messages(store, joined) == []


async def test_claims_never_joined_go_back_with_a_note_made_from_the_claim(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    lapsed, joined = await enqueue_many(store, 2)
    claimed_at = clock.now()
    await store.claim(2, ["*"], "pod-1")
    await store.join_run(joined)
    clock.advance(seconds=31)
    seen: list[UnjoinedClaim] = []

    def make(claim: UnjoinedClaim) -> LogLine:
        seen.append(claim)
        return note(clock, f"{claim.worker_name} did not join")

    cutoff = clock.now() - timedelta(seconds=30)
    assert await store.rollback_unjoined(cutoff, note=make) == [lapsed]
    assert seen == [UnjoinedClaim(lapsed, "pod-1", claimed_at)]
    assert await messages(store, lapsed) == [("FULMEN", "warn", "pod-1 did not join")]
    assert await messages(store, joined) == []
    assert await store.rollback_unjoined(cutoff, note=make) == []  # nothing left, no note
    assert len(seen) == 1


async def test_runs_joined_by_their_claim_go_back_only_if_refused_or_never_answered(
    store: SQLStore, clock: FakeClock
) -> None:
    """A claim that fetched (claim:fetch) joins its runs: the sweep of unjoined claims leaves
    them, while a refusal, or the claim's answer that could not be sent, still puts one back."""
    await seed(store)
    refused, unanswered, kept = await enqueue_many(store, 3)
    assert len(await store.claim(3, ["*"], "pod-1", join=True)) == 3
    clock.advance(seconds=31)
    assert await store.rollback_unjoined(clock.now()) == []

    assert await store.return_refused(refused, claimed_before=clock.now(), note=note(clock))
    assert await store.rollback_claims([unanswered]) == [unanswered]
    for run_id in (refused, unanswered):
        run = (await store.get_run(run_id)).run
        assert (run.state, run.claimed_at, run.joined_at) == (RunState.AVAILABLE, None, None)
    assert await state_of(store, kept) is RunState.CLAIMED

    # Claimed again as ws-worker claims: unjoined, so the sweep takes them back this time.
    assert len(await store.claim(2, ["*"], "pod-2")) == 2
    clock.advance(seconds=31)
    back = await store.rollback_unjoined(clock.now() - timedelta(seconds=30))
    assert sorted(back) == sorted([refused, unanswered])
    assert await state_of(store, kept) is RunState.CLAIMED
