"""What a worker of a run whose job names a keychain may have (issue 19), over real sockets:
the plan names the credential the keychain chose, never the keychain; that credential is
served, every other one of the keychain is refused as any credential outside the run is; and
what the worker sends back is masked with the chosen credential's value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest

from fulmen.plan import Options
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewCredential,
    NewDataclip,
    NewKeychain,
)
from fulmen_testing.coordinator import (
    ACCEPTS,
    RawWorker,
    SocketWorld,
    seed,
    serve,
    sqlite_store,
)

pytestmark = pytest.mark.anyio

CHOSEN = "tok-chosen-9f8e7d6c5b"
OTHER = "tok-other-1a2b3c4d5e"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SocketWorld, dict[str, str]]]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        project = seeded.project_id
        chosen = await store.put_credential(
            NewCredential(str(uuid4()), project, "chosen", {"token": CHOSEN})
        )
        other = await store.put_credential(
            NewCredential(str(uuid4()), project, "other", {"token": OTHER})
        )
        keychain = await store.put_keychain(
            NewKeychain(
                str(uuid4()),
                project,
                "sites",
                "$.data.site",
                {"a": chosen.id, "b": other.id},
                default_credential_id=seeded.credential_id,
            )
        )
        stored = await store.get_workflow(seeded.workflow_id)
        first, *rest = stored.workflow.jobs
        jobs = (replace(first, credential_id=None, keychain_id=keychain.id), *rest)
        await store.replace_workflow(replace(stored.workflow, jobs=jobs))
        async with serve(store) as served:
            ids = {"chosen": chosen.id, "other": other.id, "default": seeded.credential_id}
            yield SocketWorld(store, served, seeded), {**ids, "keychain": keychain.id}


async def test_the_worker_gets_the_chosen_credential_only(
    world: tuple[SocketWorld, dict[str, str]],
) -> None:
    w, ids = world
    made = await w.store.enqueue(
        EnqueueRequest(
            w.seeded.workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"site": "a"}),
            trigger_id=w.seeded.webhook_id,
            options=Options(run_timeout_ms=60_000),
        )
    )
    async with RawWorker.connect(w.served.socket_url) as worker:
        assert await worker.join("worker:queue", {}) == ("ok", {"accepts": ACCEPTS})
        status, reply = await worker.call(
            "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
        )
        assert status == "ok", reply
        [entry] = reply["runs"]
        assert entry["id"] == made.run_id
        topic = f"run:{made.run_id}"
        assert await worker.join(topic, {"token": entry["token"]}) == ("ok", {})

        status, plan = await worker.call(topic, "fetch:plan", {})
        assert status == "ok"
        first = plan["jobs"][0]
        assert first["credential_id"] == ids["chosen"] and "keychain_id" not in first
        assert ids["keychain"] not in str(plan)

        assert await worker.call(topic, "fetch:credential", {"id": ids["chosen"]}) == (
            "ok",
            {"token": CHOSEN},
        )
        # The keychain's other credentials, its default, and the keychain itself: refused.
        for refused in (ids["other"], ids["default"], ids["keychain"]):
            status, answer = await worker.call(topic, "fetch:credential", {"id": refused})
            assert (status, answer) == ("error", {"errors": {"id": ["Credential not found!"]}})

        # What the worker sends back is masked with the chosen value.
        step_id = str(uuid4())
        job_id = w.seeded.job_ids[0]
        stamp = "1760000000000000"
        assert (await worker.call(topic, "run:start", {"timestamp": stamp}))[0] == "ok"
        start = {"step_id": step_id, "job_id": job_id, "input_dataclip_id": made.dataclip_id}
        assert (await worker.call(topic, "step:start", {**start, "timestamp": stamp}))[0] == "ok"
        line = {
            "run_id": made.run_id,
            "step_id": step_id,
            "message": [f"calling with {CHOSEN}"],
            "source": "JOB",
            "level": "info",
            "timestamp": stamp,
        }
        assert (await worker.call(topic, "run:log", line))[0] == "ok"
    logs = await w.store.get_logs(made.run_id)
    assert [entry.message for entry in logs.items] == ["calling with ***"]
