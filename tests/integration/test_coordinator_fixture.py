"""The real ws-worker 1.25.0's frames (tests/fixtures/phoenix/capture.jsonl), replayed
verbatim against a Fulmen coordinator: every one is answered ``ok`` and the run is stored as
the worker reported it. Only the run token is replaced (the capture's is lightning-mock's
``x.y.z``, which Lightning, and we, refuse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from fulmen.plan import Job, Options
from fulmen.store import DataclipType, EnqueueRequest, NewDataclip, Project, Workflow
from fulmen_testing.coordinator import serve, sqlite_store, worker_token

pytestmark = pytest.mark.anyio

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix" / "capture.jsonl"
RUN = "smoke-run-1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def recorded() -> list[list[Any]]:
    """The first socket's worker frames up to leaving the run's channel."""
    frames = []
    for line in CAPTURE.read_text().splitlines():
        record = json.loads(line)
        if record["dir"] != "W->L" or record["conn"] != 1:
            continue
        frames.append(record["frame"])
        if record["frame"][2:4] == [f"run:{RUN}", "phx_leave"]:
            return frames
    raise AssertionError("the capture has no leave of the run")


async def test_ws_worker_frames_replayed_are_all_accepted(tmp_path: Path) -> None:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        await store.create_project(Project(id="p", name="fixture"))
        job = Job(id="j1", body="fn(s => s)", adaptor="@openfn/language-common@3.3.4")
        await store.create_workflow(Workflow(id="w", project_id="p", name="smoke", jobs=(job,)))
        await store.enqueue(
            EnqueueRequest(
                "w",
                input=NewDataclip(DataclipType.SAVED_INPUT, {"data": {}}, id="d"),
                run_id=RUN,
                options=Options(run_timeout_ms=300_000),
            )
        )
        async with serve(store) as served:
            url = served.socket_url + f"/websocket?token={worker_token()}&vsn=2.0.0"
            replies: list[tuple[str, str, Any]] = []
            token = ""  # the run token the replayed claim is answered with
            async with connect(url) as ws:
                for frame in recorded():
                    if frame[3] == "phx_join" and frame[2] == f"run:{RUN}":
                        frame = [*frame[:4], {"token": token}]
                    await ws.send(json.dumps(frame))
                    while True:
                        reply = await ws.recv()
                        if isinstance(reply, bytes):
                            replies.append((frame[3], "ok", reply))
                            break
                        _, ref, _, event, payload = json.loads(reply)
                        if ref == frame[1] and event == "phx_reply":
                            replies.append((frame[3], payload["status"], payload["response"]))
                            if frame[3] == "claim":
                                token = next(iter(payload["response"]["runs"]), {}).get(
                                    "token", token
                                )
                            break
        refused = [r for r in replies if r[1] != "ok"]
        assert refused == []
        claims = [r[2]["runs"] for r in replies if r[0] == "claim"]
        assert [run["id"] for runs in claims for run in runs] == [RUN]

        frames = recorded()
        detail = await store.get_run(RUN)
        assert detail.run.state == "success"
        [step] = detail.steps
        done = next(f[4] for f in frames if f[3] == "step:complete")
        assert (step.id, step.job_id, step.state) == (done["step_id"], "j1", "success")
        output = await store.get_dataclip(done["output_dataclip_id"])
        assert output.body == json.loads(done["output_dataclip"])
        logs = (await store.get_logs(RUN, limit=500)).items
        assert len(logs) == sum(1 for f in frames if f[3] == "run:log")
        assert "hello from job" in [log.message for log in logs]
