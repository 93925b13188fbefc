"""The ``Idempotency-Key`` header over loopback (issue 14), on SQLite and PostgreSQL: on the
webhook and on every API route that makes runs, a request sent again with its key gets the
first answer (status and body, marked ``Idempotent-Replayed: true``) and makes no run; the
key counts per trigger, per workflow or step; another request under the same key is 422 and
a key that is not one 400, both making nothing; two coordinators on one database taking the
same request at once make one run; a webhook that answers after completion answers a retry
from its run; expired keys go with the retention sweep; the OpenAPI document shows the
header."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator.idempotency import PATTERN
from fulmen.coordinator.retention import Retention
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    RunCompletion,
    RunFilter,
    SQLStore,
    StepCompletion,
    StepStart,
    WebhookReply,
    open_store,
)
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import RawWorker, Seeded, seed, serve
from fulmen_testing.operator import BACKENDS, Site, site, store_at

pytestmark = pytest.mark.anyio

KEY = "4e1f6c2a-0d7b-4a8e-9c55-3f2b1d0e9a77"
REPLAYED = "idempotent-replayed"
TS = "1760000000000000"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[SQLStore, str]]:
    async with store_at(request.param, tmp_path, clock=clock) as opened:
        yield opened


@pytest.fixture
async def s(backend: tuple[SQLStore, str], clock: FakeClock) -> AsyncIterator[Site]:
    store, _ = backend
    seeded = await seed(store)
    async with site(store, clock=clock) as opened:
        opened.seeded = seeded
        yield opened


def seeded_of(s: Site) -> Seeded:
    assert s.seeded is not None
    return s.seeded


async def runs(store: SQLStore) -> list[str]:
    return [run.id for run in (await store.list_runs(RunFilter(), limit=500)).items]


def keyed(key: str = KEY, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


# -- webhooks -------------------------------------------------------------------------------


async def test_a_webhook_sent_again_with_its_key_gets_the_first_answer(s: Site) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}?source=lab"
    first = await s.http.post(hook, json={"n": 1}, headers=keyed())
    again = await s.http.post(hook, json={"n": 1}, headers=keyed())
    # the same key, quoted as the IETF draft writes it; the same body, spaced otherwise
    quoted = await s.http.post(
        hook, content=b'{ "n" : 1 }', headers=keyed(f'"{KEY}"', **{"Content-Type": "x/json"})
    )

    assert first.status_code == again.status_code == quoted.status_code == 200
    assert again.content == quoted.content == first.content
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == quoted.headers[REPLAYED] == "true"
    assert await runs(s.store) == [first.json()["run_id"]]


@pytest.mark.parametrize(
    ("path", "body"),
    [("?source=lab", {"n": 2}), ("?source=other", {"n": 1}), ("", {"n": 1})],
    ids=["another body", "another query", "no query"],
)
async def test_the_same_key_with_another_webhook_request_is_422(
    s: Site, path: str, body: dict[str, int]
) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    assert (await s.http.post(hook + "?source=lab", json={"n": 1}, headers=keyed())).is_success
    refused = await s.http.post(hook + path, json=body, headers=keyed())

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await runs(s.store)) == 1


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "has space", "naïve", '"unterminated', '"bad \\n escape"', '""'],
    ids=[
        "empty",
        "256 characters",
        "space",
        "not ASCII",
        "open quote",
        "bad escape",
        "empty '\"\"'",
    ],
)
async def test_a_key_that_is_not_one_is_400_and_makes_nothing(s: Site, key: str) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    path = f"/api/workflows/{seeded_of(s).workflow_id}/runs"
    raw = key.encode("latin-1")
    for sent in (
        await s.http.post(hook, json={}, headers=[(b"idempotency-key", raw)]),
        await s.http.post(path, json={}, headers=[(b"idempotency-key", raw), *_bearer(s)]),
    ):
        assert sent.status_code == 400, sent.text
        assert sent.json()["error"]["code"] == "idempotency_key_invalid"
        assert "Idempotency-Key" in sent.json()["error"]["message"]
    assert await runs(s.store) == []


async def test_the_header_sent_twice_is_400(s: Site) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    twice = [(b"idempotency-key", b"a"), (b"idempotency-key", b"a")]
    sent = await s.http.post(hook, json={}, headers=twice)
    assert sent.status_code == 400
    assert sent.json()["error"]["code"] == "idempotency_key_invalid"
    assert await runs(s.store) == []


async def test_a_255_character_key_is_taken(s: Site) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    for _ in range(2):
        assert (await s.http.post(hook, json={}, headers=keyed("~" * 255))).is_success
    assert len(await runs(s.store)) == 1


async def test_a_key_counts_for_its_trigger_only(s: Site) -> None:
    other = await seed(s.store)
    mine = await s.http.post(f"/i/{seeded_of(s).webhook_id}", json={}, headers=keyed())
    theirs = await s.http.post(f"/i/{other.webhook_id}", json={}, headers=keyed())

    assert REPLAYED not in theirs.headers
    assert mine.json()["run_id"] != theirs.json()["run_id"]
    assert len(await runs(s.store)) == 2


async def test_a_replay_needs_what_the_request_needs(s: Site) -> None:
    """A trigger that takes authenticated requests only: an unauthenticated retry is 401,
    never the first answer."""
    seeded = seeded_of(s)
    path = f"/api/projects/{seeded.project_id}/webhook_auth_methods"
    method = await s.api("POST", path, 201, json={"name": "partner", "auth_type": "api"})
    attach = f"/api/triggers/{seeded.webhook_id}/webhook_auth_methods"
    await s.api("PUT", attach, json={"method_ids": [method["id"]]})
    hook = f"/i/{seeded.webhook_id}"
    proof = {"x-api-key": method["api_key"]}

    assert (await s.http.post(hook, json={}, headers=keyed(**proof))).status_code == 200
    refused = await s.http.post(hook, json={}, headers=keyed())
    assert refused.status_code == 401
    assert REPLAYED not in refused.headers
    assert (await s.http.post(hook, json={}, headers=keyed(**proof))).headers[REPLAYED] == "true"


async def test_without_a_key_every_request_makes_a_run(s: Site) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    for _ in range(2):
        sent = await s.http.post(hook, json={})
        assert sent.status_code == 200 and REPLAYED not in sent.headers
    assert len(await runs(s.store)) == 2


# -- the REST API ---------------------------------------------------------------------------


def _bearer(s: Site) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", s.auth["Authorization"].encode())]


async def test_a_manual_run_sent_again_with_its_key_gets_the_first_answer(s: Site) -> None:
    seeded = seeded_of(s)
    path = f"/api/workflows/{seeded.workflow_id}/runs"
    headers = keyed(**s.auth)
    first = await s.http.post(path, json={"input": {"a": 1, "b": 2}}, headers=headers)
    again = await s.http.post(path, json={"input": {"b": 2, "a": 1}}, headers=headers)
    reused = await s.http.post(path, json={"input": {"a": 2}}, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content and again.headers[REPLAYED] == "true"
    assert set(first.json()) == {"work_order_id", "run_id", "dataclip_id"}
    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert await runs(s.store) == [first.json()["run_id"]]

    # another workflow: another key
    other = await seed(s.store)
    elsewhere = f"/api/workflows/{other.workflow_id}/runs"
    made = await s.http.post(elsewhere, json={"input": {"a": 2}}, headers=headers)
    assert made.status_code == 201 and REPLAYED not in made.headers
    assert len(await runs(s.store)) == 2


async def test_reruns_sent_again_with_their_key_make_one_run(s: Site) -> None:
    seeded = seeded_of(s)
    made = await s.api("POST", f"/api/workflows/{seeded.workflow_id}/runs", 201, json={})
    step_id = await _finished_step(s.store, made["run_id"], seeded.job_ids[0])
    headers = keyed(**s.auth)

    step = [await s.http.post(f"/api/steps/{step_id}/rerun", headers=headers) for _ in "ab"]
    assert [r.status_code for r in step] == [201, 201]
    assert step[1].content == step[0].content and step[1].headers[REPLAYED] == "true"

    bulk = {"work_order_ids": [made["work_order_id"], "nope"]}
    many = [await s.http.post("/api/work_orders/rerun", json=bulk, headers=headers) for _ in "ab"]
    assert [r.status_code for r in many] == [201, 201]
    assert many[1].content == many[0].content and many[1].headers[REPLAYED] == "true"
    answer = many[0].json()
    assert len(answer["runs"]) == 1
    assert [(e["work_order_id"], e["code"]) for e in answer["errors"]] == [("nope", "not_found")]
    reused = await s.http.post(
        "/api/work_orders/rerun", json={"work_order_ids": ["nope"]}, headers=headers
    )
    assert reused.status_code == 422
    assert len(await runs(s.store)) == 3  # the manual run, one step rerun, one bulk rerun


async def _finished_step(store: SQLStore, run_id: str, job_id: str) -> str:
    """Run ``run_id``'s first step to success (as a worker would report it); its id."""
    ok = ExitReason(Reason.SUCCESS)
    await store.claim(1, ["*"])
    await store.start_run(run_id)
    detail = await store.get_run(run_id)
    await store.start_step(run_id, StepStart("step-1", job_id, detail.run.dataclip_id))
    await store.complete_step(run_id, StepCompletion("step-1", ok, "out-1", {"data": {}}))
    await store.complete_run(run_id, RunCompletion(ok, "out-1"))
    return "step-1"


# -- two coordinators, one database ---------------------------------------------------------


async def test_two_coordinators_taking_one_request_at_once_make_one_run(
    backend: tuple[SQLStore, str], clock: FakeClock
) -> None:
    store, url = backend
    seeded = await seed(store)
    async with AsyncExitStack() as stack:
        bases = []
        for _ in range(2):
            own = await stack.enter_async_context(await open_store(url, clock=clock))
            bases.append((await stack.enter_async_context(serve(own))).base_url)
        clients = [
            await stack.enter_async_context(httpx2.AsyncClient(base_url=base, timeout=30))
            for base in bases
        ]
        answers = await asyncio.gather(
            *(
                client.post(f"/i/{seeded.webhook_id}", json={"n": 1}, headers=keyed())
                for _ in range(3)
                for client in clients
            )
        )

    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.content for a in answers}) == 1
    assert sum(REPLAYED in a.headers for a in answers) == 5
    assert await runs(store) == [answers[0].json()["run_id"]]


# -- a webhook that answers after completion ------------------------------------------------


@pytest.mark.parametrize("timeout", [30.0, 0.0], ids=["answered", "pending first"])
async def test_a_webhook_answering_after_completion_answers_a_retry_from_its_run(
    backend: tuple[SQLStore, str], clock: FakeClock, timeout: float
) -> None:
    """The first answer is the run's outcome (or, with no wait at all, 202 and the ids); the
    retry, whose first request may have been cut, gets the same run's outcome: waited for as
    the first was, then its final state."""
    store, _ = backend
    seeded = await seed(store, reply=WebhookReply.AFTER_COMPLETION)
    async with (
        serve(store, clock=clock, webhook_response_timeout=timeout) as served,
        httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        hook = f"/i/{seeded.webhook_id}"
        posted = asyncio.create_task(http.post(hook, json={"q": 1}, headers=keyed()))
        async with RawWorker.connect(served.socket_url) as worker:
            run = await _claimed(worker)
            if not timeout:
                await posted  # answered without waiting: the run goes on
            await _complete(worker, run, {"data": {"ok": 1}})
        first = await posted
        again = await http.post(hook, json={"q": 1}, headers=keyed())

    if timeout:
        assert (first.status_code, first.json()) == (201, {"data": {"ok": 1}})
    else:
        assert (first.status_code, first.json()["state"]) == (202, "pending")
    assert (again.status_code, again.json()) == (201, {"data": {"ok": 1}})
    assert again.headers[REPLAYED] == "true" and again.headers["x-run-id"] == run["id"]
    assert await runs(store) == [run["id"]]


async def _claimed(worker: RawWorker) -> dict[str, Any]:
    """The webhook's run, claimed as a worker claims it."""
    await worker.join("worker:queue", {})
    while True:  # the webhook's enqueue may not have happened yet
        _, reply = await worker.call(
            "worker:queue",
            "claim",
            {"demand": 1, "languages": ["python"], "worker_name": None, "queues": ["*"]},
        )
        if reply["runs"]:
            [run] = reply["runs"]
            return dict(run)


async def _complete(worker: RawWorker, run: dict[str, Any], final_state: Any) -> None:
    topic = f"run:{run['id']}"
    await worker.join(topic, {"token": run["token"]})
    complete = {"reason": "success", "timestamp": TS, "final_state": final_state}
    assert (await worker.call(topic, "run:complete", complete))[0] == "ok"


# -- retention and the schema ---------------------------------------------------------------


async def test_expired_keys_go_with_the_retention_sweep(s: Site, clock: FakeClock) -> None:
    hook = f"/i/{seeded_of(s).webhook_id}"
    for n in range(3):
        assert (await s.http.post(hook, json={}, headers=keyed(f"k-{n}"))).is_success
    clock.advance(hours=23)
    assert (await Retention(s.served.coordinator).sweep()).expired_idempotency_keys == 0
    assert (await s.http.post(hook, json={}, headers=keyed("k-0"))).headers[REPLAYED] == "true"

    clock.advance(hours=1)
    assert (await Retention(s.served.coordinator).sweep()).expired_idempotency_keys == 3
    fresh = await s.http.post(hook, json={"n": 2}, headers=keyed("k-0"))
    assert fresh.status_code == 200 and REPLAYED not in fresh.headers
    assert len(await runs(s.store)) == 4


async def test_the_openapi_document_shows_the_header(s: Site) -> None:
    document = (await s.http.get("/openapi.json")).json()
    routes = [
        ("/i/{trigger_id}", "post"),
        ("/api/workflows/{workflow_id}/runs", "post"),
        ("/api/steps/{step_id}/rerun", "post"),
        ("/api/work_orders/rerun", "post"),
    ]
    for path, method in routes:
        operation = document["paths"][path][method]
        [header] = [p for p in operation["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"]) == ("Idempotency-Key", False)
        assert "Idempotent-Replayed" in header["description"]
        assert header["schema"]["pattern"] == PATTERN
        assert "Idempotency-Key" in operation["responses"]["400"]["description"]
