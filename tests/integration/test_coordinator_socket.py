"""The worker socket's rules, through real sockets on loopback: every refusal, and what it
leaves stored (nothing), plus replays after a reconnect being recorded once."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from websockets.exceptions import InvalidStatus

from fulmen import keys as keyring
from fulmen.tokens import mint_run_token
from fulmen_testing.coordinator import (
    RawWorker,
    SocketWorld,
    keys,
    seed,
    serve,
    sqlite_store,
    worker_token,
)

pytestmark = pytest.mark.anyio

TS = "1760000000000000"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- connect --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "not-a-jwt", "WRONG_SECRET"])
async def test_bad_or_missing_worker_tokens_are_refused_with_401_and_never_logged(
    world: SocketWorld, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    if token == "WRONG_SECRET":
        token = worker_token(secret=keyring.generate().worker_secret)
    url = world.served.socket_url + "/websocket" + (f"?token={token}" if token else "")
    from websockets.asyncio.client import connect

    with (
        caplog.at_level(logging.WARNING, logger="fulmen.coordinator"),
        pytest.raises(InvalidStatus) as refused,
    ):
        async with connect(url):
            pass
    assert refused.value.response.status_code == 401
    assert "refused a worker socket" in caplog.text
    if token:
        assert token not in caplog.text


# -- run:<id> join --------------------------------------------------------------------------


async def test_run_join_refusals(world: SocketWorld) -> None:
    run_id = await world.enqueue()
    other = await world.enqueue()
    async with RawWorker.connect(world.served.socket_url) as worker:
        await worker.join("worker:queue", {})
        _, reply = await worker.call(
            "worker:queue", "claim", {"demand": 2, "languages": ["python"], "worker_name": "w"}
        )
        tokens = {run["id"]: run["token"] for run in reply["runs"]}
        assert set(tokens) == {run_id, other}
        topic = f"run:{run_id}"
        private = keyring.load_private_key(keys().private_key)
        stranger = keyring.load_private_key(keyring.generate().private_key)
        expired = mint_run_token(private, run_id, now=1_000_000, run_timeout=1)
        forged = mint_run_token(
            stranger, run_id, now=world.served.coordinator.now(), run_timeout=60
        )
        for payload in (
            {},
            {"token": 7},
            {"token": "x.y.z"},
            {"token": expired},
            {"token": forged},
            {"token": tokens[other]},
        ):
            assert await worker.join(topic, payload) == ("error", {"reason": "unauthorized"})
        ghost = str(uuid4())
        ghost_token = mint_run_token(
            private, ghost, now=world.served.coordinator.now(), run_timeout=60
        )
        assert await worker.join(f"run:{ghost}", {"token": ghost_token}) == (
            "error",
            {"reason": "not_found"},
        )
        assert await worker.join("nowhere:1", {}) == ("error", {"reason": "unmatched topic"})
        assert await worker.join(topic, {"token": tokens[run_id]}) == ("ok", {})
    detail = await world.store.get_run(run_id)
    assert detail.run.joined_at is not None
    assert (await world.store.get_run(other)).run.joined_at is None


async def test_a_join_after_the_claim_was_rolled_back_is_refused(world: SocketWorld) -> None:
    run_id = await world.enqueue()
    async with RawWorker.connect(world.served.socket_url) as worker:
        await worker.join("worker:queue", {})
        _, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
        )
        await world.store.rollback_claims([run_id])
        assert await worker.join(f"run:{run_id}", {"token": reply["runs"][0]["token"]}) == (
            "error",
            {"reason": "unauthorized"},
        )


# -- invalid payloads and illegal transitions ---------------------------------------------------


INVALID = [
    ("claim", {"worker_name": None}, "demand"),
    ("claim", {"demand": 0, "worker_name": None}, "demand"),
    ("claim", {"demand": 1, "worker_name": None, "queues": [1]}, "queues[0]"),
    ("run:start", {"timestamp": "123"}, "timestamp"),
    ("step:start", {"step_id": "s"}, "job_id"),
    ("step:complete", {"step_id": "s", "reason": "weird"}, "reason"),
    (
        "run:log",
        {"run_id": "r", "message": [], "source": "JOB", "level": "info", "timestamp": TS},
        "message",
    ),
    (
        "run:log",
        {"run_id": "r", "message": ["x"], "source": "TOOLONGSRC", "level": "info", "timestamp": TS},
        "source",
    ),
    (
        "run:log",
        {"run_id": "r", "message": ["x"], "source": "JOB", "level": "loud", "timestamp": TS},
        "level",
    ),
    (
        "run:batch_logs",
        {"run_id": "r", "logs": [{"message": ["x"], "source": "JOB", "level": "info"}]},
        "logs[0].timestamp",
    ),
    ("run:complete", {"reason": "lost"}, "reason"),
]


async def test_invalid_payloads_name_the_field_and_store_nothing(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        before = await world.store.get_run(run_id)
        for event, payload, field in INVALID:
            where = "worker:queue" if event == "claim" else topic
            status, response = await worker.call(where, event, payload)
            assert status == "error", (event, payload)
            assert field in response, (event, response)
            assert isinstance(response[field], list) and response[field][0], response
        # ids that do not belong to the run
        status, response = await worker.call(
            topic, "step:start", {"step_id": str(uuid4()), "job_id": str(uuid4()), "timestamp": TS}
        )
        assert (status, response) == ("error", {"job_id": ["does not exist"]})
        status, response = await worker.call(
            topic, "step:complete", {"step_id": str(uuid4()), "reason": "success"}
        )
        assert (status, response) == ("error", {"step_id": ["not found"]})
        status, response = await worker.call(
            topic,
            "run:log",
            {
                "run_id": run_id,
                "message": ["x"],
                "source": "JOB",
                "level": "info",
                "timestamp": TS,
                "step_id": str(uuid4()),
            },
        )
        assert (status, response) == ("error", {"step_id": ["must be associated with the run"]})
        status, response = await worker.call(topic, "fetch:credential", {"id": str(uuid4())})
        assert (status, response) == ("error", {"errors": {"id": ["Credential not found!"]}})
        assert (await worker.call(topic, "fetch:credential", {}))[0] == "error"
        assert (await worker.call(topic, "no:such", {}))[0] == "error"
    after = await world.store.get_run(run_id)
    assert after == before
    assert (await world.store.get_logs(run_id)).items == ()


async def test_illegal_transitions_are_refused_in_lightnings_words(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        done = {"reason": "success", "error_type": None, "error_message": None, "timestamp": TS}
        assert await worker.call(topic, "run:complete", done) == ("ok", None)
        failed = {**done, "reason": "fail", "error_type": "JobError"}
        assert await worker.call(topic, "run:complete", failed) == (
            "error",
            {"state": ["already in completed state"]},
        )
        assert await worker.call(topic, "run:start", {"timestamp": TS}) == (
            "error",
            {"state": ["already in completed state"]},
        )
    run = (await world.store.get_run(run_id)).run
    assert run.state == "success" and run.error_type is None


async def test_events_resent_after_a_reconnect_are_recorded_once(world: SocketWorld) -> None:
    step_id, output_id = str(uuid4()), str(uuid4())
    job_id = world.seeded.job_ids[0]
    events: list[tuple[str, dict[str, Any]]] = [
        ("run:start", {"versions": {}, "timestamp": TS}),
        ("step:start", {"step_id": step_id, "job_id": job_id, "timestamp": TS}),
        (
            "run:log",
            {
                "run_id": "r",
                "step_id": step_id,
                "message": ["hello"],
                "source": "JOB",
                "level": "info",
                "timestamp": TS,
            },
        ),
        (
            "step:complete",
            {
                "step_id": step_id,
                "job_id": job_id,
                "reason": "success",
                "output_dataclip_id": output_id,
                "output_dataclip": json.dumps({"data": {"x": 1}}),
                "timestamp": TS,
            },
        ),
        ("run:complete", {"reason": "success", "final_dataclip_id": output_id, "timestamp": TS}),
    ]
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        first = [await worker.call(topic, event, payload) for event, payload in events]
    assert all(status == "ok" for status, _ in first), first
    # the same worker reconnects, rejoins with its token, and sends everything again
    async with RawWorker.connect(world.served.socket_url) as worker:
        await world.rejoin(worker, run_id)
        again = [await worker.call(topic, event, payload) for event, payload in events]
    assert again == first
    detail = await world.store.get_run(run_id)
    assert [step.id for step in detail.steps] == [step_id]
    assert [log.message for log in (await world.store.get_logs(run_id)).items] == ["hello"]
    assert detail.run.state == "success"


async def test_credential_values_are_masked_in_logs_once_fetched(world: SocketWorld) -> None:
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        status, body = await worker.call(
            topic, "fetch:credential", {"id": world.seeded.credential_id}
        )
        assert status == "ok" and body["password"] == "s3cr3t-pw"
        status, dataclip = await worker.call(topic, "fetch:dataclip", {"id": "ignored"})
        assert status == "ok" and json.loads(dataclip)["data"] == {"n": 1}
        line = {
            "run_id": run_id,
            "message": ["pw is", "s3cr3t-pw", {"p": "s3cr3t-pw"}],
            "source": "JOB",
            "level": "info",
            "timestamp": TS,
        }
        assert (await worker.call(topic, "run:log", line))[0] == "ok"
    [stored] = (await world.store.get_logs(run_id)).items
    assert "s3cr3t-pw" not in stored.message
    assert stored.message == 'pw is *** {"p":"***"}'


async def test_work_available_is_pushed_to_joined_workers(tmp_path: Path) -> None:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        await seed(store)
        async with (
            serve(store, services=True) as served,
            RawWorker.connect(served.socket_url) as worker,
        ):
            await worker.join("worker:queue", {})
            served.coordinator.hub.work_available()
            topic, event, payload = await worker.push()
    assert (topic, event, payload) == ("worker:queue", "work-available", {})


async def test_a_silent_worker_is_disconnected_after_the_idle_timeout(tmp_path: Path) -> None:
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, socket_idle_timeout=0.2) as served,
        RawWorker.connect(served.socket_url) as worker,
    ):
        await worker.join("worker:queue", {})  # then nothing, not even a heartbeat
        async with asyncio.timeout(10):
            assert await worker.closed() == 1000
