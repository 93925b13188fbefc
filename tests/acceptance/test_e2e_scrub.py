"""End to end (issue 13): a job that switches off the runtime's scrubber in its own process
still cannot get a credential, or the webhook key that started its run, stored or served.

The coordinator scrubs again everything the worker sends, with the run's own secrets: the
log lines, the output dataclips, the error message. The job below replaces every method of
``fulmen.scrub.Scrubber`` in its child with one that masks nothing, then prints and returns
the secrets plainly and in encoded forms, and fails with one in its error.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fulmen_testing.e2e import system

pytestmark = pytest.mark.anyio

TOKEN = "tok-7f3a9c1e5b2d"

DISARM = """
import base64
import fulmen.scrub as scrub

scrub.Scrubber.text = lambda self, text: text
scrub.Scrubber.value = lambda self, value: value
scrub.Scrubber.mask = lambda self, text, head=0, tail=0: text
scrub.Scrubber.continues = lambda self, text: False
"""

LEAK = (
    DISARM
    + """
@fn
def leak(state):
    token = state["configuration"]["token"]
    key = state["data"]["echo"]
    print("token", token, "key", key)
    print("encoded", base64.b64encode(token.encode()).decode(), token.encode().hex())
    return {"data": {"token": token, "key": key, "nested": [{"t": "Bearer " + token}]}}
"""
)

FAIL = (
    DISARM
    + """
@fn
def fail(state):
    raise RuntimeError("cannot use " + state["data"]["token"])
"""
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_coordinator_masks_what_a_disarmed_job_sends(tmp_path: Path) -> None:
    async with system(tmp_path) as (_, _, api):
        http, h = api.http, api.headers
        project = (await http.post("/api/projects", json={"name": "p"}, headers=h)).json()
        base = f"/api/projects/{project['id']}"
        credential = await http.post(
            f"{base}/credentials", json={"name": "api", "body": {"token": TOKEN}}, headers=h
        )
        assert credential.status_code == 201, credential.text
        method = await http.post(
            f"{base}/webhook_auth_methods", json={"name": "k", "auth_type": "api"}, headers=h
        )
        assert method.status_code == 201, method.text
        key = method.json()["api_key"]
        document = {
            "name": "leaky",
            "jobs": [
                {
                    "id": "leak",
                    "adaptor": "common",
                    "body": LEAK,
                    "credential_id": credential.json()["id"],
                },
                {"id": "fail", "adaptor": "common", "body": FAIL},
            ],
            "triggers": [{"id": "hook-leaky", "type": "webhook"}],
            "edges": [
                {"source_trigger_id": "hook-leaky", "target_job_id": "leak"},
                {"source_job_id": "leak", "target_job_id": "fail", "condition": "always"},
            ],
        }
        made = await http.post(f"{base}/workflows", json=document, headers=h)
        assert made.status_code == 201, made.text
        attached = await http.put(
            "/api/triggers/hook-leaky/webhook_auth_methods",
            json={"method_ids": [method.json()["id"]]},
            headers=h,
        )
        assert attached.status_code == 200, attached.text
        hooked = await http.post("/i/hook-leaky", json={"echo": key}, headers={"x-api-key": key})
        assert hooked.status_code == 200, hooked.text

        run = await api.finished(hooked.json()["run_id"])
        steps = {step["job_id"]: step for step in run["steps"]}
        output = await api.dataclip(steps["leak"]["output_dataclip_id"])
        logs = await api.logs(run["id"])

    assert output["data"] == {"token": "***", "key": "***", "nested": [{"t": "Bearer ***"}]}
    messages = [line["message"] for line in logs]
    assert "token *** key ***" in messages
    assert "encoded *** ***" in messages
    assert run["state"] == "failed"
    assert "cannot use ***" in json.dumps(run)
    served = json.dumps([run, output, logs])
    for secret in (TOKEN, key, base64.b64encode(TOKEN.encode()).decode(), TOKEN.encode().hex()):
        assert secret not in served
