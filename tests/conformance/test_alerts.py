"""Failure alerts in the store (issue 18), on SQLite and PostgreSQL: a run's end leaves an
outbox row only when its workflow's rule asks; endings are folded into at most one alert per
period; deliveries are claimed once, retried with backoff and their failures shown; a digest
says what the project's runs did. Time is the FakeClock's; nothing sleeps."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.lifecycle import RunState
from fulmen.plan import Edge, Job, Options
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    AlertDigest,
    AlertRule,
    ChannelType,
    DataclipType,
    DeliveryState,
    DigestFrequency,
    EnqueueRequest,
    NewAlertChannel,
    NewDataclip,
    Project,
    RunCompletion,
    SQLStore,
    Workflow,
    WorkflowTrigger,
    open_store,
)
from fulmen.store.alert_policy import DEFAULT_OUTCOMES
from fulmen_testing.clock import FakeClock

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

FAILED = frozenset({RunState.FAILED})


def workflow(workflow_id: str = "w", name: str = "nightly") -> Workflow:
    return Workflow(
        id=workflow_id,
        project_id="p",
        name=name,
        jobs=(Job(id=f"{workflow_id}-j", body="fn(lambda s: s)", adaptor="common"),),
        triggers=(WorkflowTrigger(id=f"{workflow_id}-t"),),
        edges=(Edge(f"{workflow_id}-e", f"{workflow_id}-j", source_trigger_id=f"{workflow_id}-t"),),
    )


async def seed(store: SQLStore) -> None:
    await store.create_project(Project(id="p", name="Clinic"))
    await store.create_workflow(workflow())


async def email(store: SQLStore, channel_id: str = "mail") -> str:
    made = await store.create_alert_channel(
        NewAlertChannel(
            channel_id, "p", f"ops {channel_id}", ChannelType.EMAIL, ("ops@example.org",)
        )
    )
    return made.id


async def ended(
    store: SQLStore,
    reason: Reason = Reason.FAIL,
    error_type: str | None = "RuntimeError",
    workflow_id: str = "w",
) -> str:
    """A run of ``workflow_id``, claimed, started and completed with ``reason``."""
    run_id = (
        await store.enqueue(
            EnqueueRequest(
                workflow_id=workflow_id,
                input=NewDataclip(DataclipType.HTTP_REQUEST, {}),
                options=Options(run_timeout_ms=60_000),
            )
        )
    ).run_id
    [claimed] = await store.claim(1, ["*"], "worker-1")
    assert claimed.id == run_id
    await store.start_run(run_id)
    await store.complete_run(run_id, RunCompletion(ExitReason(reason, error_type, "boom")))
    return run_id


async def test_channels_are_made_listed_and_deleted_within_their_project(
    store: SQLStore,
) -> None:
    await seed(store)
    await store.create_project(Project(id="q", name="Other"))
    mail = await store.create_alert_channel(
        NewAlertChannel("mail", "p", "ops", ChannelType.EMAIL, ("a@example.org", "b@example.org"))
    )
    assert mail.recipients == ("a@example.org", "b@example.org") and mail.secret is None
    hook = await store.create_alert_channel(
        NewAlertChannel("hook", "p", "pager", ChannelType.WEBHOOK, url="https://example.org/h")
    )
    assert hook.secret is not None and hook.secret.startswith("whsec_")  # shown once…
    listed = await store.list_alert_channels("p")
    assert [(c.id, c.secret) for c in listed] == [("mail", None), ("hook", None)]  # …never again
    with pytest.raises(NotFoundError) as other:
        await store.get_alert_channel("q", "mail")
    assert other.value.field == "channel_id"
    with pytest.raises(ConflictError):
        await store.create_alert_channel(
            NewAlertChannel("x", "p", "ops", ChannelType.EMAIL, ("c@example.org",))
        )
    for bad, field in [
        (NewAlertChannel("y", "p", "n", ChannelType.EMAIL, ("not an address",)), "recipients"),
        (NewAlertChannel("y", "p", "n", ChannelType.EMAIL, ()), "recipients"),
        (NewAlertChannel("y", "p", "n", ChannelType.WEBHOOK, url="ftp://x"), "url"),
        (NewAlertChannel("y", "p", "n", ChannelType.WEBHOOK, url="http://x", secret="s"), "secret"),
    ]:
        with pytest.raises(InputError) as refused:
            await store.create_alert_channel(bad)
        assert refused.value.field == field
    await store.delete_alert_channel("p", "hook")
    assert [c.id for c in await store.list_alert_channels("p")] == ["mail"]


async def test_a_rule_names_outcomes_and_channels_of_its_own_project(store: SQLStore) -> None:
    await seed(store)
    await store.create_project(Project(id="q", name="Other"))
    await store.create_alert_channel(
        NewAlertChannel("theirs", "q", "x", ChannelType.EMAIL, ("q@example.org",))
    )
    channel = await email(store)
    assert await store.get_alert_rule("p", "w") is None
    rule = await store.put_alert_rule(AlertRule("w", "p", DEFAULT_OUTCOMES, (channel,)))
    assert rule.outcomes == DEFAULT_OUTCOMES and rule.period_seconds == 300
    assert await store.list_alert_rules("p") == [rule]
    with pytest.raises(InputError) as foreign:
        await store.put_alert_rule(AlertRule("w", "p", FAILED, ("theirs",)))
    assert foreign.value.field == "channel_ids"
    with pytest.raises(InputError) as success:
        await store.put_alert_rule(AlertRule("w", "p", frozenset({"success"}), ()))  # type: ignore[arg-type]
    assert success.value.field == "outcomes"
    with pytest.raises(NotFoundError) as elsewhere:
        await store.get_alert_rule("q", "w")
    assert elsewhere.value.field == "workflow_id"
    await store.delete_alert_channel("p", channel)  # leaves the rule, without the channel
    assert (await store.get_alert_rule("p", "w")) == replace(rule, channel_ids=())


async def test_only_the_outcomes_a_rule_names_leave_an_ending(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    await ended(store, Reason.FAIL)  # no rule yet: nothing
    await store.put_alert_rule(AlertRule("w", "p", frozenset({RunState.CRASHED}), ()))
    await ended(store, Reason.SUCCESS, None)
    await ended(store, Reason.FAIL)
    crashed = await ended(store, Reason.CRASH, "ChildCrashed")
    [alert] = await store.fold_alerts()
    assert alert.workflow_id == "w" and alert.body["count"] == 1
    assert alert.body["first_run_id"] == alert.body["last_run_id"] == crashed
    assert alert.body["outcomes"] == {"crashed": 1}
    assert alert.body["error_types"] == {"ChildCrashed": 1}
    assert alert.body["workflow"] == {"id": "w", "name": "nightly"}
    clock.advance(minutes=10)
    assert await store.fold_alerts() == []  # nothing pending


async def test_twenty_failures_are_one_alert_now_and_one_after_the_period(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    channel = await email(store)
    await store.put_alert_rule(AlertRule("w", "p", DEFAULT_OUTCOMES, (channel,)))
    first = await ended(store)
    [alert] = await store.fold_alerts()
    assert alert.body["count"] == 1 and alert.body["first_run_id"] == first
    rest = []
    for _ in range(19):
        clock.advance(seconds=5)
        rest.append(await ended(store))
        assert await store.fold_alerts() == []  # within the period: folded, not sent
    clock.set(alert.inserted_at + timedelta(seconds=300))
    [follow_up] = await store.fold_alerts()
    assert follow_up.body["count"] == 19
    assert (follow_up.body["first_run_id"], follow_up.body["last_run_id"]) == (rest[0], rest[-1])
    assert follow_up.body["outcomes"] == {"failed": 19}
    assert follow_up.body["previous_alert_at"] == alert.inserted_at.isoformat()
    assert [a.id for a in await store.list_alerts("p", workflow_id="w")] == [
        follow_up.id,
        alert.id,
    ]
    deliveries = await store.list_alert_deliveries("p")
    assert sorted(d.alert_id for d in deliveries) == sorted([alert.id, follow_up.id])


async def test_lost_and_cancelled_runs_alert_when_chosen(store: SQLStore, clock: FakeClock) -> None:
    await seed(store)
    await store.put_alert_rule(
        AlertRule("w", "p", frozenset({RunState.LOST, RunState.CANCELLED}), ())
    )
    queued = (
        await store.enqueue(EnqueueRequest("w", input=NewDataclip(DataclipType.HTTP_REQUEST, {})))
    ).run_id
    await store.cancel_run(queued)
    lost = (
        await store.enqueue(
            EnqueueRequest(
                "w",
                input=NewDataclip(DataclipType.HTTP_REQUEST, {}),
                options=Options(run_timeout_ms=1000),
            )
        )
    ).run_id
    await store.claim(1, ["*"], "gone")
    clock.advance(minutes=5)
    assert [run.id for run in await store.mark_lost()] == [lost]
    [alert] = await store.fold_alerts()
    assert alert.body["count"] == 2
    assert alert.body["outcomes"] == {"cancelled": 1, "lost": 1}


async def test_a_rule_turned_off_forgets_its_pending_endings(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    rule = await store.put_alert_rule(AlertRule("w", "p", FAILED, ()))
    await ended(store)
    await store.put_alert_rule(replace(rule, enabled=False))
    await ended(store)
    await store.put_alert_rule(rule)
    assert await store.fold_alerts() == []


async def test_a_failed_delivery_is_retried_later_and_shown_failing(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    channel = await email(store)
    await store.put_alert_rule(AlertRule("w", "p", FAILED, (channel,)))
    await ended(store)
    [alert] = await store.fold_alerts()
    lease = timedelta(minutes=1)
    [claimed] = await store.claim_alert_deliveries(lease=lease)
    assert (claimed.attempt, claimed.alert.id, claimed.recipients) == (
        1,
        alert.id,
        ("ops@example.org",),
    )
    assert await store.claim_alert_deliveries(lease=lease) == []  # held by the claim
    retry = clock.now() + timedelta(seconds=30)
    assert await store.finish_alert_delivery(
        claimed.id, 1, error="connection refused", retry_at=retry
    )
    health = (await store.get_alert_channel("p", channel)).health
    assert (health.failing, health.last_error, health.attempts, health.next_attempt_at) == (
        1,
        "connection refused",
        1,
        retry,
    )
    [failing] = await store.list_alert_deliveries("p", channel_id=channel, failing=True)
    assert (failing.state, failing.attempts, failing.next_attempt_at) == ("pending", 1, retry)
    assert await store.claim_alert_deliveries(lease=lease) == []  # not before the backoff
    clock.set(retry)
    [again] = await store.claim_alert_deliveries(lease=lease)
    assert again.attempt == 2
    assert not await store.finish_alert_delivery(again.id, 1, error=None, retry_at=None)  # stale
    assert await store.finish_alert_delivery(again.id, 2, error=None, retry_at=None)
    health = (await store.get_alert_channel("p", channel)).health
    assert (health.failing, health.last_sent_at) == (0, clock.now())
    [sent] = await store.list_alert_deliveries("p")
    assert (sent.state, sent.sent_at) == (DeliveryState.SENT, clock.now())


async def test_a_delivery_given_up_stays_failing_until_the_channel_works_again(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    channel = await email(store)
    await store.put_alert_rule(AlertRule("w", "p", FAILED, (channel,)))
    await ended(store)
    await store.fold_alerts()
    [claimed] = await store.claim_alert_deliveries(lease=timedelta(minutes=1))
    await store.finish_alert_delivery(claimed.id, 1, error="550 no such user", retry_at=None)
    [failing] = await store.list_alert_deliveries("p", failing=True)
    assert (failing.state, failing.next_attempt_at) == (DeliveryState.FAILED, None)
    health = (await store.get_alert_channel("p", channel)).health
    assert (health.failing, health.last_error, health.next_attempt_at) == (
        1,
        "550 no such user",
        None,
    )
    clock.advance(minutes=10)
    await ended(store)
    await store.fold_alerts()
    [next_one] = await store.claim_alert_deliveries(lease=timedelta(minutes=1))
    await store.finish_alert_delivery(next_one.id, 1, error=None, retry_at=None)
    assert (await store.get_alert_channel("p", channel)).health.failing == 0


async def test_a_webhook_channels_secret_comes_with_its_claimed_delivery(
    store: SQLStore,
) -> None:
    await seed(store)
    hook = await store.create_alert_channel(
        NewAlertChannel("hook", "p", "pager", ChannelType.WEBHOOK, url="http://127.0.0.1:9/h")
    )
    await store.put_alert_rule(AlertRule("w", "p", FAILED, (hook.id,)))
    await ended(store)
    await store.fold_alerts()
    [claimed] = await store.claim_alert_deliveries(lease=timedelta(minutes=1))
    assert (claimed.channel_type, claimed.url, claimed.secret) == (
        ChannelType.WEBHOOK,
        "http://127.0.0.1:9/h",
        hook.secret,
    )


async def test_stores_sharing_a_database_fold_and_claim_each_alert_once(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    """Coordinators on one database (PostgreSQL: several connections; SQLite: several
    stores on one file) folding and claiming at once: every ending is in exactly one alert
    and every delivery is claimed by exactly one of them."""
    await seed(store)
    channel = await email(store)
    for number in range(8):
        workflow_id = f"w{number}"
        await store.create_workflow(workflow(workflow_id, f"flow {number}"))
        await store.put_alert_rule(AlertRule(workflow_id, "p", FAILED, (channel,)))
        for _ in range(3):
            await ended(store, workflow_id=workflow_id)
    others = [await open_store(backend.url, credential_key=KEY, clock=clock) for _ in range(3)]
    stores = [store, *others]
    try:
        folded = await asyncio.gather(*(s.fold_alerts(limit=2) for s in stores * 3))
        claimed = await asyncio.gather(
            *(s.claim_alert_deliveries(lease=timedelta(minutes=1), limit=3) for s in stores * 3)
        )
    finally:
        for other in others:
            await other.close()
    alerts = [alert for batch in folded for alert in batch]
    assert sorted(str(a.workflow_id) for a in alerts) == [f"w{n}" for n in range(8)]
    assert all(a.body["count"] == 3 for a in alerts)
    ids = [delivery.alert.id for batch in claimed for delivery in batch]
    assert sorted(ids) == sorted(a.id for a in alerts)


async def test_a_digest_counts_outcomes_slowest_workflows_and_new_failure_types(
    store: SQLStore, clock: FakeClock
) -> None:
    await seed(store)
    await store.create_workflow(workflow("v", "hourly"))
    channel = await email(store)
    # the day before: a KeyError, new then (the first digest says so), not on the next day
    clock.set(clock.now().replace(hour=10) - timedelta(days=1))
    await ended(store, Reason.FAIL, "KeyError")
    digest = await store.put_alert_digest(AlertDigest("p", DigestFrequency.DAILY, (channel,)))
    day = clock.now().replace(hour=0) + timedelta(days=1)
    assert digest.next_due_at == day
    assert await store.make_alert_digests() == []  # not due yet
    clock.set(day + timedelta(minutes=1))
    [first] = await store.make_alert_digests()
    assert first.body["total"] == 1
    assert [f["error_type"] for f in first.body["new_failure_types"]] == ["KeyError"]  # type: ignore[index, union-attr]
    clock.set(day + timedelta(hours=9))  # the day the second digest is about
    for seconds, reason, error in [
        (1, Reason.SUCCESS, None),
        (3, Reason.FAIL, "KeyError"),
        (2, Reason.FAIL, "TimeoutError"),
    ]:
        run_id = (
            await store.enqueue(
                EnqueueRequest("w", input=NewDataclip(DataclipType.HTTP_REQUEST, {}))
            )
        ).run_id
        await store.claim(1, ["*"], "w1")
        await store.start_run(run_id)
        clock.advance(seconds=seconds)
        await store.complete_run(run_id, RunCompletion(ExitReason(reason, error)))
    await ended(store, Reason.CRASH, "TimeoutError", workflow_id="v")
    clock.set(day + timedelta(days=1, minutes=1))
    [made] = await store.make_alert_digests()
    body = made.body
    assert (body["frequency"], body["total"]) == ("daily", 4)
    assert body["outcomes"] == {"crashed": 1, "failed": 2, "success": 1}
    assert [(w["workflow_id"], w["runs"], w["max_ms"]) for w in body["slowest"]] == [  # type: ignore[index, union-attr]
        ("w", 3, 3000),
        ("v", 1, 0),
    ]
    assert [(f["error_type"], f["runs"]) for f in body["new_failure_types"]] == [  # type: ignore[index, union-attr]
        ("TimeoutError", 2)
    ]
    assert [d.alert_id for d in await store.list_alert_deliveries("p")] == [made.id, first.id]
    after = await store.get_alert_digest("p")
    assert after.next_due_at == day + timedelta(days=2)
    assert await store.make_alert_digests() == []
