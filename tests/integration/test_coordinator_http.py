"""The coordinator's HTTP side over loopback: webhooks (ids, limits, nothing half-written,
replies after completion), the REST API (bearer tokens, documents, 404/409/422), health and
metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx2
import pytest

from fulmen.store import RunFilter, SQLStore, WebhookReply
from fulmen_testing.coordinator import (
    RawWorker,
    Seeded,
    Served,
    api_token,
    seed,
    serve,
    sqlite_store,
)

pytestmark = pytest.mark.anyio

TS = "1760000000000000"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    served: Served
    seeded: Seeded
    http: httpx2.AsyncClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def runs(self) -> int:
        page = await self.store.list_runs(RunFilter(project_id=self.seeded.project_id))
        return len(page.items)


@asynccontextmanager
async def site(
    tmp_path: Path, *, reply: WebhookReply | None = None, **overrides: Any
) -> AsyncIterator[Site]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store, reply=reply)
        token = await api_token(store)
        async with (
            serve(store, **overrides) as served,
            httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
        ):
            yield Site(store, served, seeded, http, token)


# -- webhooks -------------------------------------------------------------------------------


async def test_a_webhook_stores_its_body_and_answers_with_ids(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        response = await s.http.post(
            f"/i/{s.seeded.webhook_id}?x=1",
            json={"patient": {"id": 7}},
            headers={"Authorization": "Basic c2VjcmV0", "X-Trace": "t1"},
        )
        assert response.status_code == 200, response.text
        ids = response.json()
        detail = await s.store.get_run(ids["run_id"])
        assert detail.run.work_order_id == ids["work_order_id"]
        assert detail.run.queue == "default"
        assert detail.run.options.run_timeout_ms == 300_000
        dataclip = await s.store.get_dataclip(detail.run.dataclip_id or "")
        assert dataclip.type == "http_request"
        assert dataclip.body == {"patient": {"id": 7}}
        assert dataclip.request["query_params"] == {"x": "1"}
        assert dataclip.request["headers"]["x-trace"] == "t1"
        assert "authorization" not in dataclip.request["headers"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"<xml/>", "application/xml", 415),
        (b'{"a": "\\u0000"}', "application/json", 400),
        (b"[" + b"1," * 800 + b"1]", "application/json", 413),
    ],
)
async def test_bad_webhook_bodies_leave_nothing_behind(
    tmp_path: Path, body: bytes, content_type: str, status: int
) -> None:
    async with site(tmp_path, max_dataclip_size_mb=0.001) as s:
        response = await s.http.post(
            f"/i/{s.seeded.webhook_id}", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"]
        assert await s.runs() == 0


async def test_unknown_triggers_are_404(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        assert (await s.http.post(f"/i/{uuid4()}", json={})).status_code == 404
        assert await s.runs() == 0


async def test_a_webhook_that_replies_after_completion(tmp_path: Path) -> None:
    async with site(tmp_path, reply=WebhookReply.AFTER_COMPLETION) as s:
        posted = asyncio.create_task(s.http.post(f"/i/{s.seeded.webhook_id}", json={"q": 1}))
        async with RawWorker.connect(s.served.socket_url) as worker:
            await worker.join("worker:queue", {})
            while True:  # the webhook's enqueue may not have happened yet
                _, reply = await worker.call(
                    "worker:queue",
                    "claim",
                    {
                        "demand": 1,
                        "languages": ["python"],
                        "worker_name": None,
                        "queues": ["fast_lane"],
                    },
                )
                if reply["runs"]:
                    break
            [run] = reply["runs"]
            topic = f"run:{run['id']}"
            await worker.join(topic, {"token": run["token"]})
            complete = {"reason": "success", "timestamp": TS, "final_state": {"data": {"ok": 1}}}
            assert (await worker.call(topic, "run:complete", complete))[0] == "ok"
        response = await posted
        assert response.status_code == 201
        assert response.json() == {"data": {"ok": 1}}
        assert response.headers["x-run-id"] == run["id"]


async def test_a_webhook_waiting_too_long_gets_202_and_the_ids(tmp_path: Path) -> None:
    async with site(
        tmp_path, reply=WebhookReply.AFTER_COMPLETION, webhook_response_timeout=0.2
    ) as s:
        response = await s.http.post(f"/i/{s.seeded.webhook_id}", json={})
        assert response.status_code == 202
        assert response.json()["run_id"]
        assert response.json()["state"] == "pending"


# -- API ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer fmn_abc_def"},
        "WRONG_SECRET",
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ],
)
async def test_the_api_wants_a_valid_bearer_token(tmp_path: Path, headers: Any) -> None:
    async with site(tmp_path) as s:
        if headers == "WRONG_SECRET":
            token_id = s.token.split("_")[1]
            headers = {"Authorization": f"Bearer fmn_{token_id}_not-the-secret"}
        response = await s.http.get("/api/projects", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_projects_workflows_and_credentials(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        h = s.auth
        created = await s.http.post("/api/projects", json={"name": "ops"}, headers=h)
        assert created.status_code == 201
        project = created.json()
        assert (await s.http.get(f"/api/projects/{project['id']}", headers=h)).json() == project
        listed = (await s.http.get("/api/projects", params={"limit": 1}, headers=h)).json()
        assert len(listed["items"]) == 1 and listed["next_cursor"]

        cred = await s.http.post(
            f"/api/projects/{project['id']}/credentials",
            json={"name": "api", "body": {"token": "hunter22"}},
            headers=h,
        )
        assert cred.status_code == 201 and "hunter22" not in cred.text
        creds = await s.http.get(f"/api/projects/{project['id']}/credentials", headers=h)
        assert "hunter22" not in creds.text and len(creds.json()["items"]) == 1

        document = {
            "name": "sync",
            "jobs": [
                {
                    "id": "j1",
                    "body": "x = 1",
                    "adaptor": "common",
                    "credential_id": cred.json()["id"],
                }
            ],
            "triggers": [
                {
                    "id": "t1",
                    "type": "cron",
                    "cron_expression": "0 3 * * *",
                    "timezone": "Europe/Riga",
                }
            ],
            "edges": [{"source_trigger_id": "t1", "target_job_id": "j1"}],
        }
        bad = {**document, "triggers": [{**document["triggers"][0], "cron_expression": "nope"}]}
        response = await s.http.post(
            f"/api/projects/{project['id']}/workflows", json=bad, headers=h
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == "bad_cron"
        response = await s.http.post(
            f"/api/projects/{project['id']}/workflows", json=document, headers=h
        )
        assert response.status_code == 201, response.text
        workflow = response.json()
        assert workflow["version"] == 1 and workflow["jobs"][0]["credential_id"]
        url = f"/api/workflows/{workflow['id']}"
        renamed = await s.http.put(
            url, json={**document, "name": "sync2"}, params={"expected_version": 1}, headers=h
        )
        assert renamed.status_code == 200 and renamed.json()["version"] == 2
        stale = await s.http.put(url, json=document, params={"expected_version": 1}, headers=h)
        assert stale.status_code == 409
        assert (await s.http.get(url, headers=h)).json()["name"] == "sync2"
        in_use = await s.http.delete(f"/api/credentials/{cred.json()['id']}", headers=h)
        assert in_use.status_code == 409
        assert (await s.http.delete(url, headers=h)).status_code == 204
        assert (await s.http.get(url, headers=h)).status_code == 404
        assert (await s.http.delete(f"/api/projects/{project['id']}", headers=h)).status_code == 204


async def test_runs_manual_runs_cancel_logs_and_dataclips(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        h = s.auth
        started = await s.http.post(
            f"/api/workflows/{s.seeded.workflow_id}/runs",
            json={"input": {"data": {"a": 1}}},
            headers=h,
        )
        assert started.status_code == 201
        run_id = started.json()["run_id"]
        run = (await s.http.get(f"/api/runs/{run_id}", headers=h)).json()
        assert run["state"] == "available" and run["queue"] == "manual" and run["steps"] == []
        dataclip = (await s.http.get(f"/api/dataclips/{run['dataclip_id']}", headers=h)).json()
        assert dataclip["body"] == {"data": {"a": 1}} and dataclip["type"] == "saved_input"
        listed = await s.http.get(
            "/api/runs",
            params={"workflow_id": s.seeded.workflow_id, "state": "available"},
            headers=h,
        )
        assert [r["id"] for r in listed.json()["items"]] == [run_id]
        none = await s.http.get("/api/runs", params={"state": "success"}, headers=h)
        assert none.json()["items"] == []
        assert (
            await s.http.get("/api/runs", params={"state": "nah"}, headers=h)
        ).status_code == 422
        assert (await s.http.get(f"/api/runs/{run_id}/logs", headers=h)).json()["items"] == []
        cancelled = await s.http.post(f"/api/runs/{run_id}/cancel", headers=h)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert (await s.http.post(f"/api/runs/{run_id}/cancel", headers=h)).status_code == 409
        for path in (
            f"/api/runs/{uuid4()}",
            f"/api/runs/{uuid4()}/logs",
            f"/api/dataclips/{uuid4()}",
            f"/api/projects/{uuid4()}",
            f"/api/workflows/{uuid4()}",
        ):
            response = await s.http.get(path, headers=h)
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
        missing = await s.http.post(f"/api/workflows/{uuid4()}/runs", json={}, headers=h)
        assert missing.status_code == 404


async def test_openapi_health_and_metrics(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        openapi = (await s.http.get("/openapi.json")).json()
        for path in (
            "/api/projects",
            "/api/workflows/{workflow_id}",
            "/api/runs/{run_id}/logs",
            "/i/{trigger_id}",
            "/health/ready",
        ):
            assert path in openapi["paths"]
        assert (await s.http.get("/health/live")).json() == {"status": "ok"}
        assert (await s.http.get("/health/ready")).status_code == 200
        await s.http.post(f"/i/{s.seeded.webhook_id}", json={})
        async with RawWorker.connect(s.served.socket_url) as worker:
            await worker.join("worker:queue", {})
            metrics = (await s.http.get("/metrics")).text
            assert "fulmen_connected_workers 1.0" in metrics
            await worker.call(
                "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
            )
        metrics = (await s.http.get("/metrics")).text
        assert 'fulmen_queue_depth{queue="default"} 0.0' in metrics
        assert 'fulmen_runs{state="claimed"} 1.0' in metrics
        assert 'fulmen_runs_ended_total{state="success"} 0.0' in metrics  # none ended yet
        assert "fulmen_claim_duration_seconds_count 1.0" in metrics
