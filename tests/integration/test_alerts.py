"""Failure alerts end to end (issue 18): a real coordinator and worker, a real SMTP server and a
real webhook receiver on loopback, the REST API and the dashboard.

* A run that fails is announced by e-mail, received by the local SMTP server, with the
  dispatcher started by the coordinator's own lifespan (and stopped with it).
* A webhook channel's POST is signed so that the receiver here, which checks it with its own
  HMAC code, can verify it; a receiver that refuses is tried again after the backoff, and the
  failure shows in the API and on the dashboard until the retry goes through.
* Two coordinators' dispatchers on one PostgreSQL database send each alert once.
* The API and the dashboard refuse what the store refuses, naming the field.

Receivers put what arrives on queues that the tests await; time that matters (the backoff) is
a FakeClock's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator import build_coordinator
from fulmen.coordinator.alerts import AlertDispatcher, Senders
from fulmen.coordinator.alerts.email import EmailSender
from fulmen.coordinator.alerts.webhook import WebhookSender
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import (
    AlertRule,
    ChannelType,
    NewAlertChannel,
    open_store,
)
from fulmen.store.alert_policy import DEFAULT_OUTCOMES
from fulmen_testing.alerts import Request, fail_run, smtp_inbox, webhook_receiver
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import CREDENTIAL_KEY, Seeded, seed, settings
from fulmen_testing.operator import Site, fulmen_worker, site, store_at, until

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
#: Raises in the job: the run ends ``failed`` (exit reason ``fail``).
FAILING = "fn(lambda s: 1 / 0)"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def verified(secret: str, request: Request, now: float) -> dict[str, Any]:
    """The receiver's side of Standard Webhooks, written here from the specification: the
    signature over ``id.timestamp.body`` with the secret's key, and a fresh timestamp; the
    body decoded."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id, stamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    mac = hmac.new(key, f"{message_id}.{stamp}.".encode() + request.body, hashlib.sha256)
    expected = "v1," + base64.b64encode(mac.digest()).decode()
    assert any(
        hmac.compare_digest(expected, s) for s in request.headers["webhook-signature"].split()
    )
    assert abs(now - int(stamp)) <= 300
    document: dict[str, Any] = json.loads(request.body)
    return document


# -- e-mail, end to end ---------------------------------------------------------------------


async def test_a_failed_run_is_announced_by_email(tmp_path: Path) -> None:
    async with (
        smtp_inbox() as inbox,
        store_at("sqlite", tmp_path) as (store, _),
    ):
        seeded = await seed(store, jobs=(("boom", FAILING),))
        async with site(
            store,
            services=True,  # the dispatcher runs in the coordinator's lifespan
            smtp_host="127.0.0.1",
            smtp_port=inbox.port,
            smtp_starttls=False,
            smtp_from="Fulmen <fulmen@example.org>",
            alert_poll_interval=0.05,
            public_url="https://fulmen.example.org",
        ) as s:
            project = seeded.project_id
            channel = await s.api(
                "POST",
                f"/api/projects/{project}/alert_channels",
                201,
                json={"name": "ops", "type": "email", "recipients": ["ops@example.org"]},
            )
            rule = await s.api(
                "PUT",
                f"/api/projects/{project}/workflows/{seeded.workflow_id}/alert_rule",
                json={"channel_ids": [channel["id"]]},
            )
            assert rule["outcomes"] == ["crashed", "failed", "killed", "lost"]
            async with fulmen_worker(s.served):
                answer = await s.http.post(f"/i/{seeded.webhook_id}", json={"n": 1})
                run_id = answer.json()["run_id"]
                mail = await asyncio.wait_for(inbox.messages.get(), 30)
            run = (await store.get_run(run_id)).run
            assert run.state == "failed"
            assert mail["X-Envelope-To"] == "ops@example.org"
            assert mail["From"] == "Fulmen <fulmen@example.org>"
            assert mail["Subject"] == "[Fulmen] chain: 1 run failed"
            text = mail.get_content()
            assert f"First run: {run_id} (https://fulmen.example.org/ui/runs/{run_id})" in text
            assert f"Error types: {run.error_type} 1." in text
            [delivery] = (await s.api("GET", f"/api/projects/{project}/alert_deliveries"))["items"]
            assert mail["Message-ID"] == f"<{delivery['id']}@fulmen.alerts>"
            await until(
                lambda: s.api("GET", f"/api/projects/{project}/alert_channels/{channel['id']}"),
                lambda doc: doc["health"]["last_sent_at"] is not None,
                what="the delivery recorded as sent",
            )
        # the lifespan stopped the dispatcher with the coordinator: the block ended
        assert inbox.messages.empty()


async def test_a_stopping_coordinator_stops_mid_send_and_the_send_is_claimed_again(
    tmp_path: Path,
) -> None:
    """Shutdown cancels the dispatcher even while an SMTP server holds it (it took the
    connection and says nothing); the delivery stays claimed, untried, and after its lease
    another coordinator's dispatcher sends it, under the same Message-ID."""
    clock = FakeClock(T0)
    connected, release = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await release.wait()
        writer.close()

    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    try:
        async with store_at("sqlite", tmp_path, clock=clock) as (store, _):
            seeded = await seed(store, jobs=(("boom", FAILING),))
            channel = await store.create_alert_channel(
                NewAlertChannel(
                    "mail", seeded.project_id, "ops", ChannelType.EMAIL, ("o@example.org",)
                )
            )
            await store.put_alert_rule(
                AlertRule(seeded.workflow_id, seeded.project_id, DEFAULT_OUTCOMES, (channel.id,))
            )
            overrides = {"smtp_host": "127.0.0.1", "smtp_starttls": False}
            async with site(
                store,
                services=True,
                clock=clock,
                smtp_port=port,
                alert_poll_interval=0.05,
                **overrides,
            ):
                await fail_run(store, seeded)
                await connected.wait()  # the dispatcher is mid-send, held by the server
            # the block ended: the lifespan cancelled the dispatcher where it was
            [held] = await store.list_alert_deliveries(seeded.project_id)
            assert (held.state, held.attempts, held.last_error) == ("pending", 1, None)
            async with smtp_inbox() as inbox:
                mail = settings(smtp_port=inbox.port, **overrides)
                built = build_coordinator(mail, store, clock=clock)
                other = AlertDispatcher(
                    built, senders=Senders(EmailSender(mail), WebhookSender(5.0, built.outbound))
                )
                assert (await other.tick()).sent == []  # the claim still holds
                clock.advance(minutes=2)  # past the lease (2 x 30 s + 30 s)
                assert (await other.tick()).sent == [held.id]
                received = inbox.messages.get_nowait()
            assert received["Message-ID"] == f"<{held.id}@fulmen.alerts>"
    finally:
        release.set()
        mute.close()
        await mute.wait_closed()


# -- webhooks: signed, retried, failures shown ------------------------------------------------


@dataclass
class Board:
    site: Site
    seeded: Seeded
    clock: FakeClock
    dispatcher: AlertDispatcher

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.site.http.base_url).rstrip("/")}

    async def page(self) -> str:
        answer = await self.site.http.get("/ui/alerts")
        assert answer.status_code == 200, answer.text
        return answer.text

    async def form(self, path: str, data: dict[str, Any]) -> httpx2.Response:
        return await self.site.http.post(path, data=data, headers=self.origin)


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    clock = FakeClock(T0)
    async with store_at("sqlite", tmp_path, clock=clock) as (store, _):
        seeded = await seed(store, jobs=(("boom", FAILING),))
        async with site(store, clock=clock, alert_backoff_min=30, alert_backoff_max=600) as s:
            signed = await s.http.post(
                "/ui/login", data={"token": s.token}, headers={"Origin": s.served.base_url}
            )
            assert signed.status_code == 303
            yield Board(s, seeded, clock, AlertDispatcher(s.served.coordinator))


async def test_a_webhook_alert_is_signed_and_a_refused_one_retried_after_the_backoff(
    board: Board,
) -> None:
    s, project = board.site, board.seeded.project_id
    async with webhook_receiver([503]) as receiver:
        hook = await s.api(
            "POST",
            f"/api/projects/{project}/alert_channels",
            201,
            json={"name": "pager", "type": "webhook", "url": receiver.url},
        )
        secret = hook["secret"]
        assert secret.startswith("whsec_")
        listed = await s.api("GET", f"/api/projects/{project}/alert_channels")
        assert [c.get("secret") for c in listed["items"]] == [None]  # shown that once only
        await s.api(
            "PUT",
            f"/api/projects/{project}/workflows/{board.seeded.workflow_id}/alert_rule",
            json={"channel_ids": [hook["id"]], "outcomes": ["failed"], "period_seconds": 60},
        )
        run_id = await fail_run(s.store, board.seeded)

        first = await board.dispatcher.tick()
        assert len(first.alerts) == 1 and len(first.failed) == 1
        refused = receiver.requests.get_nowait()
        assert refused.method == "POST" and refused.path == "/hooks/fulmen"
        document = verified(secret, refused, board.clock.now().timestamp())
        assert document["type"] == "fulmen.alert.failures"
        assert (document["data"]["count"], document["data"]["first_run_id"]) == (1, run_id)

        # the failure, through the API and on the dashboard
        health = (await s.api("GET", f"/api/projects/{project}/alert_channels/{hook['id']}"))[
            "health"
        ]
        retry_at = board.clock.now() + timedelta(seconds=30)
        assert health["failing"] == 1 and health["attempts"] == 1
        assert health["last_error"] == f"the webhook {receiver.url} answered 503: ok"
        assert datetime.fromisoformat(health["next_attempt_at"]) == retry_at
        [failing] = (
            await s.api(
                "GET",
                f"/api/projects/{project}/alert_channels/{hook['id']}/deliveries",
                params={"failing": "true"},
            )
        )["items"]
        assert (failing["state"], failing["attempts"]) == ("pending", 1)
        page = await board.page()
        assert "1 delivery failing." in page
        assert f"the webhook {receiver.url} answered 503: ok" in page

        assert (await board.dispatcher.tick()).sent == []  # not before the backoff
        assert receiver.requests.empty()
        board.clock.set(retry_at)
        second = await board.dispatcher.tick()
        assert len(second.sent) == 1 and second.alerts == []
        again = receiver.requests.get_nowait()
        assert again.headers["webhook-id"] == refused.headers["webhook-id"]  # the same message
        assert verified(secret, again, board.clock.now().timestamp()) == document
        health = (await s.api("GET", f"/api/projects/{project}/alert_channels/{hook['id']}"))[
            "health"
        ]
        assert health["failing"] == 0 and health["last_sent_at"] is not None
        assert "failing." not in await board.page()


async def test_a_burst_of_twenty_failures_is_two_alerts_saying_how_many(board: Board) -> None:
    s, seeded = board.site, board.seeded
    async with smtp_inbox() as inbox:
        mail = settings(smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_starttls=False)
        senders = Senders(EmailSender(mail), WebhookSender(5.0, s.served.coordinator.outbound))
        dispatcher = AlertDispatcher(s.served.coordinator, senders=senders)
        channel = await s.store.create_alert_channel(
            NewAlertChannel("mail", seeded.project_id, "ops", ChannelType.EMAIL, ("o@example.org",))
        )
        await s.store.put_alert_rule(
            AlertRule(seeded.workflow_id, seeded.project_id, DEFAULT_OUTCOMES, (channel.id,))
        )
        runs = [await fail_run(s.store, seeded)]
        await dispatcher.tick()
        first = inbox.messages.get_nowait()
        assert first["Subject"] == "[Fulmen] chain: 1 run failed"
        for _ in range(19):
            board.clock.advance(seconds=10)
            runs.append(await fail_run(s.store, seeded))
            assert (await dispatcher.tick()).alerts == []  # folded
        assert inbox.messages.empty()
        board.clock.set(T0 + timedelta(minutes=5))
        [follow_up_alert] = (await dispatcher.tick()).alerts
        follow_up = inbox.messages.get_nowait()
        assert follow_up["Subject"] == "[Fulmen] chain: 19 runs failed"
        text = follow_up.get_content()
        assert "19 runs are folded into this alert" in text
        assert "at most once every 5 min" in text
        assert f"First run: {runs[1]}" in text and f"Last run: {runs[-1]}" in text
        assert follow_up_alert.body["count"] == 19


# -- two coordinators, one database -----------------------------------------------------------


async def test_two_dispatchers_on_one_postgresql_database_send_each_alert_once(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    async with (
        store_at("postgres", tmp_path, clock=clock) as (store, url),
        webhook_receiver() as receiver,
    ):
        other = await open_store(url, credential_key=CREDENTIAL_KEY, clock=clock)
        try:
            secrets = {}
            for _ in range(6):
                seeded = await seed(store)
                hook = await store.create_alert_channel(
                    NewAlertChannel(
                        f"hook-{seeded.project_id}",
                        seeded.project_id,
                        "pager",
                        ChannelType.WEBHOOK,
                        url=receiver.url,
                    )
                )
                secrets[seeded.workflow_id] = str(hook.secret)
                await store.put_alert_rule(
                    AlertRule(seeded.workflow_id, seeded.project_id, DEFAULT_OUTCOMES, (hook.id,))
                )
                for _ in range(3):
                    await fail_run(store, seeded)
            dispatchers = [
                AlertDispatcher(build_coordinator(settings(), s, clock=clock))
                for s in (store, other, store, other)
            ]
            for _ in range(3):
                await asyncio.gather(*(d.tick() for d in dispatchers))
        finally:
            await other.close()
        received = [receiver.requests.get_nowait() for _ in range(receiver.requests.qsize())]
    documents = [
        verified(secrets[json.loads(r.body)["data"]["workflow"]["id"]], r, clock.now().timestamp())
        for r in received
    ]
    assert sorted(d["data"]["workflow"]["id"] for d in documents) == sorted(secrets)
    assert all(d["data"]["count"] == 3 for d in documents)
    assert len({r.headers["webhook-id"] for r in received}) == 6


# -- refusals -------------------------------------------------------------------------------


async def test_the_api_and_the_dashboard_refuse_naming_the_field(board: Board) -> None:
    s, seeded = board.site, board.seeded
    project, workflow = seeded.project_id, seeded.workflow_id
    other = await seed(s.store)
    theirs = await s.api(
        "POST",
        f"/api/projects/{other.project_id}/alert_channels",
        201,
        json={"name": "x", "type": "email", "recipients": ["x@example.org"]},
    )
    bad = await s.http.post(
        f"/api/projects/{project}/alert_channels",
        headers=s.auth,
        json={"name": "ops", "type": "email", "recipients": ["not an address"]},
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "recipients"
    foreign = await s.http.put(
        f"/api/projects/{project}/workflows/{workflow}/alert_rule",
        headers=s.auth,
        json={"channel_ids": [theirs["id"]]},
    )
    assert foreign.status_code == 422 and foreign.json()["error"]["field"] == "channel_ids"
    success = await s.http.put(
        f"/api/projects/{project}/workflows/{workflow}/alert_rule",
        headers=s.auth,
        json={"outcomes": ["success"]},
    )
    assert success.status_code == 422
    assert success.json()["detail"][0]["loc"] == ["body", "outcomes", 0]
    elsewhere = await s.http.get(
        f"/api/projects/{other.project_id}/workflows/{workflow}/alert_rule", headers=s.auth
    )
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["field"] == "workflow_id"
    not_theirs = await s.http.get(
        f"/api/projects/{project}/alert_channels/{theirs['id']}", headers=s.auth
    )
    assert not_theirs.status_code == 404
    digest = await s.api(
        "PUT", f"/api/projects/{project}/alert_digest", json={"frequency": "weekly"}
    )
    assert digest["next_due_at"] == "2026-03-09T00:00:00Z"  # T0 is a Wednesday

    # the same through the dashboard's forms
    base = f"/ui/alerts/projects/{project}"
    refused = await board.form(
        f"{base}/channels", {"name": "ops", "type": "email", "recipients": "nope"}
    )
    assert refused.status_code == 422 and "is not an e-mail address" in refused.text
    made = await board.form(
        f"{base}/channels",
        {"name": "ops", "type": "email", "recipients": "a@example.org, b@example.org"},
    )
    assert made.status_code == 303
    [channel] = await s.store.list_alert_channels(project)
    assert channel.recipients == ("a@example.org", "b@example.org")
    hook = await board.form(
        f"{base}/channels", {"name": "pager", "type": "webhook", "url": "https://h.example.org/x"}
    )
    assert hook.status_code == 201 and "whsec_" in hook.text  # its secret, shown once
    ruled = await board.form(
        f"{base}/workflows/{workflow}/rule",
        {"enabled": "1", "outcomes": ["failed", "lost"], "channel_ids": [channel.id]},
    )
    assert ruled.status_code == 303
    rule = await s.store.get_alert_rule(project, workflow)
    assert rule is not None and sorted(rule.outcomes) == ["failed", "lost"]
    assert rule.channel_ids == (channel.id,)
    none_chosen = await board.form(f"{base}/workflows/{workflow}/rule", {"enabled": "1"})
    assert none_chosen.status_code == 422 and 'role="alert"' in none_chosen.text
    stranger = await s.http.post(
        f"{base}/workflows/{workflow}/rule/delete", headers={"Origin": "https://evil.example"}
    )
    assert stranger.status_code == 403  # another site's form
    assert (await s.store.get_alert_rule(project, workflow)) == rule


async def test_runs_that_end_are_never_slowed_by_a_dead_channel(board: Board) -> None:
    """A channel that cannot be reached changes nothing for runs: they end as before, and the
    outbox holds one row per workflow's pending alert until a dispatcher folds it."""
    s, seeded = board.site, board.seeded
    hook = await s.store.create_alert_channel(
        NewAlertChannel(
            "dead", seeded.project_id, "dead", ChannelType.WEBHOOK, url="http://127.0.0.1:9/x"
        )
    )
    await s.store.put_alert_rule(
        AlertRule(seeded.workflow_id, seeded.project_id, DEFAULT_OUTCOMES, (hook.id,))
    )
    runs = [await fail_run(s.store, seeded) for _ in range(3)]
    for run_id in runs:
        assert (await s.store.get_run(run_id)).run.state in FINAL_RUN_STATES
    tick = await board.dispatcher.tick()
    assert len(tick.failed) == 1 and "cannot be reached" in tick.failed[0][1]
