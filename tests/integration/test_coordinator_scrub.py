"""The coordinator scrubs what a worker sends (issue 13), whatever the worker did itself.

A raw socket plays a worker that masks nothing, as OpenFn's ws-worker does not mask
dataclips (or a Fulmen worker whose job disabled the child's scrubber): it never fetches the
credential, and sends the run's credential and webhook key plainly and encoded, in log
lines, an output dataclip, error messages and the final state. Everything stored, and kept
for the webhook's reply, is masked. And saving a credential through the API with a value too
short to mask logs one warning naming the field.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx2
import pytest

from fulmen.store import (
    NewWebhookAuthMethod,
    WebhookAuthType,
)
from fulmen_testing.coordinator import (
    RawWorker,
    SocketWorld,
    api_token,
    seed,
    serve,
    sqlite_store,
)

pytestmark = pytest.mark.anyio

TS = "1760000000000000"
PASSWORD = "s3cr3t-pw"  # the seeded credential's
API_KEY = "partner-key-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SocketWorld]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        method = await store.create_webhook_auth_method(
            NewWebhookAuthMethod(
                str(uuid4()), seeded.project_id, "partner", WebhookAuthType.API, api_key=API_KEY
            )
        )
        await store.set_trigger_auth_methods(seeded.webhook_id, [method.id])
        async with serve(store) as served:
            yield SocketWorld(store, served, seeded)


def log_line(run_id: str, step_id: str, *message: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step_id": step_id,
        "message": list(message),
        "source": "JOB",
        "level": "info",
        "timestamp": TS,
    }


async def test_what_a_worker_that_masks_nothing_sends_is_stored_masked(world: SocketWorld) -> None:
    step_id, output_id = str(uuid4()), str(uuid4())
    job_id = world.seeded.job_ids[0]
    b64 = base64.b64encode(PASSWORD.encode()).decode()
    output = {"data": {"pw": PASSWORD, "key": API_KEY, "hex": API_KEY.encode().hex()}}
    async with RawWorker.connect(world.served.socket_url) as worker:
        run_id, topic = await world.claimed(worker)
        sent = [
            ("run:start", {"versions": {}, "timestamp": TS}),
            ("step:start", {"step_id": step_id, "job_id": job_id, "timestamp": TS}),
            ("run:log", log_line(run_id, step_id, "pw", PASSWORD, {"b64": b64})),
            (
                "run:batch_logs",
                {"run_id": run_id, "logs": [log_line(run_id, step_id, "key " + API_KEY)]},
            ),
            (
                "step:complete",
                {
                    "step_id": step_id,
                    "job_id": job_id,
                    "reason": "fail",
                    "error_type": "RuntimeError",
                    "error_message": f"refused {PASSWORD}",
                    "output_dataclip_id": output_id,
                    "output_dataclip": json.dumps(output),
                    "timestamp": TS,
                },
            ),
            (
                "run:complete",
                {
                    "reason": "fail",
                    "error_type": "RuntimeError",
                    "error_message": f"refused {API_KEY}",
                    "final_dataclip_id": output_id,
                    "final_state": output,
                    "timestamp": TS,
                },
            ),
        ]
        for event, payload in sent:
            assert (await worker.call(topic, event, payload))[0] == "ok", event

    logs = [line.message for line in (await world.store.get_logs(run_id)).items]
    assert logs == ['pw *** {"b64":"***"}', "key ***"]
    stored = (await world.store.get_dataclip(output_id)).body
    assert stored == {"data": {"pw": "***", "key": "***", "hex": "***"}}
    detail = await world.store.get_run(run_id)
    assert detail.run.error_message == "refused ***"
    assert [step.error_message for step in detail.steps] == ["refused ***"]
    memory = world.served.coordinator.memories.peek(run_id)
    assert memory is not None and memory.final_state == stored  # the webhook's reply


async def test_a_credential_with_a_value_too_short_to_mask_is_saved_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        token = await api_token(store)
        async with (
            serve(store) as served,
            httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
        ):
            caplog.set_level(logging.WARNING, logger="fulmen.store")
            path = f"/api/projects/{seeded.project_id}/credentials"
            body = {"username": "al", "password": "long-enough", "pin": "987"}
            made = await http.post(
                path,
                json={"name": "short", "body": body},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert made.status_code == 201, made.text
    [warning] = [r for r in caplog.records if r.name.startswith("fulmen.store")]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"credential {made.json()['id']}: pin shorter than 4 characters, "
        "so not masked in logs and outputs"
    )
    assert "987" not in warning.getMessage()
