"""Issue 15 through the REST API, over loopback: a job's language (said, or implied by its
adaptor), JavaScript adaptors resolved to exact versions against an npm registry (a small one
on loopback: the outside world's edge), what is refused and that a refusal saves nothing, and
the plan a worker then receives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.store import SQLStore
from fulmen_testing.coordinator import RawWorker, api_token, serve, sqlite_store
from fulmen_testing.npm_registry import FakeRegistry, closed_url, npm_registry

pytestmark = pytest.mark.anyio

COUNT_JS = "fn(state => {\n  state.data.count = state.data.items.length;\n  return state;\n});"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Api:
    http: httpx2.AsyncClient
    store: SQLStore
    project_id: str

    async def create(self, *jobs: dict[str, Any], **workflow: Any) -> httpx2.Response:
        document = {"name": "sync", "jobs": list(jobs), **workflow}
        return await self.http.post(f"/api/projects/{self.project_id}/workflows", json=document)

    async def workflows(self) -> list[dict[str, Any]]:
        answer = await self.http.get(f"/api/projects/{self.project_id}/workflows")
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@asynccontextmanager
async def api(tmp_path: Path, registry: str) -> AsyncIterator[Api]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        token = await api_token(store)
        async with (
            serve(store, npm_registry=registry) as served,
            httpx2.AsyncClient(
                base_url=served.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as http,
        ):
            project = (await http.post("/api/projects", json={"name": "p"})).json()
            yield Api(http, store, project["id"])


@pytest.fixture
async def registry() -> AsyncIterator[FakeRegistry]:
    with npm_registry() as served:
        yield served


def job(job_id: str, body: str, adaptor: str, **more: Any) -> dict[str, Any]:
    return {"id": job_id, "name": job_id, "body": body, "adaptor": adaptor, **more}


async def test_a_job_says_its_language_or_takes_its_adaptors(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    async with api(tmp_path, registry.url) as a:
        made = await a.create(
            job("py", "fn(lambda s: s)", "common"),
            job("js", COUNT_JS, "@openfn/language-common@latest"),
            # a Python job naming Lightning's adaptor for Fulmen's common one, as before
            job("legacy", "fn(lambda s: s)", "@openfn/language-common@2.1.1", language="python"),
        )
        assert made.status_code == 201, made.text
        expected = [
            ("py", "common", "python"),
            ("js", "@openfn/language-common@3.3.4", "javascript"),
            ("legacy", "@openfn/language-common@2.1.1", "python"),
        ]
        jobs = made.json()["jobs"]
        assert [(j["id"], j["adaptor"], j["language"]) for j in jobs] == expected
        read = (await a.http.get(f"/api/workflows/{made.json()['id']}")).json()
        assert [(j["id"], j["adaptor"], j["language"]) for j in read["jobs"]] == expected
        # the abbreviated packument, once, for the one JavaScript job
        assert registry.requests == [
            (
                "@openfn/language-common",
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
            )
        ]


async def test_an_update_can_make_a_python_job_javascript(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    async with api(tmp_path, registry.url) as a:
        made = (await a.create(job("count", "fn(lambda s: s)", "common"))).json()
        assert made["jobs"][0]["language"] == "python"
        url = f"/api/workflows/{made['id']}"
        as_js = {"name": "sync", "jobs": [job("count", COUNT_JS, "common", language="javascript")]}
        updated = await a.http.put(url, json=as_js, params={"expected_version": 1})
        assert updated.status_code == 200, updated.text
        [saved] = updated.json()["jobs"]
        assert (saved["language"], saved["adaptor"]) == (
            "javascript",
            "@openfn/language-common@3.3.4",
        )
        # each version keeps what it was: runs of version 1 still run Python
        first = (await a.http.get(f"/api/snapshots/{made['snapshot_id']}")).json()
        assert first["workflow"]["jobs"][0]["language"] == "python"
        second = (await a.http.get(f"/api/snapshots/{updated.json()['snapshot_id']}")).json()
        assert second["workflow"]["jobs"][0]["adaptor"] == "@openfn/language-common@3.3.4"


@pytest.mark.parametrize(
    ("adaptor", "exact"),
    [
        ("common", "@openfn/language-common@3.3.4"),
        ("http", "@openfn/language-http@7.0.0"),
        ("@openfn/language-common", "@openfn/language-common@3.3.4"),
        ("@openfn/language-http@^6", "@openfn/language-http@6.5.1"),
        ("@openfn/language-common@~3.2", "@openfn/language-common@3.2.3"),
        ("@openfn/language-common@next", "@openfn/language-common@4.0.0-rc.1"),
        ("@openfn/language-common@3.2.1", "@openfn/language-common@3.2.1"),
    ],
)
async def test_a_javascript_adaptor_is_saved_at_the_version_npm_would_install(
    tmp_path: Path, registry: FakeRegistry, adaptor: str, exact: str
) -> None:
    async with api(tmp_path, registry.url) as a:
        made = await a.create(job("js", "fn(s => s)", adaptor, language="javascript"))
        assert made.status_code == 201, made.text
        assert made.json()["jobs"][0]["adaptor"] == exact
        resolved = await a.http.get("/api/adaptors/resolved", params={"adaptor": [adaptor]})
        assert resolved.json() == {"items": [{"adaptor": adaptor, "resolved": exact}]}


@pytest.mark.parametrize(
    ("adaptor", "code", "says"),
    [
        (
            "@openfn/language-nope@1",
            "unknown_adaptor",
            "has no package @openfn/language-nope",
        ),
        (
            "@openfn/language-common@9.9.9",
            "unknown_adaptor_version",
            "@openfn/language-common has no version 9.9.9 (its latest is 3.3.4)",
        ),
        (
            "@openfn/language-common@^5",
            "unknown_adaptor_version",
            "has no version in the range '^5'",
        ),
        ("lodash@4", "bad_adaptor", "is not an adaptor a JavaScript job can use"),
    ],
)
async def test_an_adaptor_that_does_not_exist_saves_nothing(
    tmp_path: Path, registry: FakeRegistry, adaptor: str, code: str, says: str
) -> None:
    async with api(tmp_path, registry.url) as a:
        refused = await a.create(
            job("fetch", "get('/x')", "http"),
            job("load", "fn(s => s)", adaptor, language="javascript"),
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == code
        assert error["message"].startswith("job 'load' (load): ") and says in error["message"]
        assert await a.workflows() == []


async def test_a_registry_that_cannot_be_reached_saves_nothing(tmp_path: Path) -> None:
    down = closed_url()
    async with api(tmp_path, down) as a:
        refused = await a.create(job("js", "fn(s => s)", "@openfn/language-common@latest"))
        assert refused.status_code == 502, refused.text
        assert refused.json()["error"] == {
            "code": "registry_unreachable",
            "message": f"job 'js' (js): the npm registry {down} could not be reached about "
            "@openfn/language-common: ConnectError: All connection attempts failed",
        }
        assert await a.workflows() == []
        answer = await a.http.get("/api/adaptors/resolved", params={"adaptor": ["common"]})
        assert answer.status_code == 502


async def test_a_save_that_keeps_its_adaptors_does_not_need_the_registry(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    """An adaptor the version being replaced had was checked when it was saved: editing a
    body asks the registry nothing, so it works while the registry is down."""
    async with api(tmp_path, registry.url) as a:
        made = (await a.create(job("js", "fn(s => s)", "@openfn/language-common@^3"))).json()
        exact = made["jobs"][0]["adaptor"]
        registry_asked = len(registry.requests)
        edited = {"name": "sync", "jobs": [job("js", COUNT_JS, exact)]}
        saved = await a.http.put(f"/api/workflows/{made['id']}", json=edited)
        assert saved.status_code == 200, saved.text
        assert len(registry.requests) == registry_asked


async def test_a_body_that_does_not_parse_is_refused_by_line_before_the_registry_is_asked(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    async with api(tmp_path, registry.url) as a:
        broken = "fn(state => {\n  const x = 1 +;\n  return state;\n});"
        refused = await a.create(job("count", broken, "@openfn/language-common@latest"))
        assert refused.status_code == 422
        assert refused.json()["error"] == {
            "code": "syntax_error",
            "message": "job 'count' (count): the body does not parse as JavaScript: "
            "SyntaxError at line 2, column 15: unexpected '+'",
            "field": "jobs[0].body",
        }
        python = await a.create(job("count", "fn(lambda s: s\n", "common"))
        assert python.json()["error"]["message"] == (
            "job 'count' (count): the body does not parse as Python: "
            "SyntaxError at line 1, column 3: '(' was never closed"
        )
        assert registry.requests == [] and await a.workflows() == []


async def test_a_condition_is_in_the_language_of_its_source_job(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    async with api(tmp_path, registry.url) as a:
        jobs = (
            job("count", COUNT_JS, "common", language="javascript"),
            job("report", "fn(s => s)", "common", language="javascript"),
            job("archive", "fn(lambda s: s)", "common"),
            job("notify", "fn(lambda s: s)", "common"),
        )

        def edges(js_condition: str) -> list[dict[str, Any]]:
            return [
                {"id": "e1", "source_trigger_id": "t", "target_job_id": "count"},
                {"id": "e2", "source_job_id": "count", "target_job_id": "report"}
                | {"condition": js_condition},
                {"id": "e3", "source_job_id": "report", "target_job_id": "archive"}
                | {"condition": "state.data.count > 2 && !state.errors"},
                {"id": "e4", "source_job_id": "archive", "target_job_id": "notify"}
                | {"condition": "state.data.count > 2 and not state.get('errors')"},
            ]

        triggers = [{"id": "t"}]
        accepted = await a.create(
            *jobs, triggers=triggers, edges=edges("state.data.count > 2 && !state.errors")
        )
        assert accepted.status_code == 201, accepted.text
        await a.http.delete(f"/api/workflows/{accepted.json()['id']}")

        refused = await a.create(*jobs, triggers=triggers, edges=edges("state.data.count >"))
        assert refused.status_code == 422
        assert refused.json()["error"] == {
            "code": "syntax_error",
            "message": "edge e2 (count -> report): the condition does not parse as JavaScript: "
            "SyntaxError at line 1, column 19: unexpected end of the source: '>' needs "
            "something after it",
            "field": "edges[1].condition",
        }
        assert await a.workflows() == []


async def test_the_plan_a_worker_receives_says_each_jobs_language_and_exact_adaptor(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        token = await api_token(store)
        async with (
            serve(store, npm_registry=registry.url) as served,
            httpx2.AsyncClient(
                base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}
            ) as http,
        ):
            project = (await http.post("/api/projects", json={"name": "p"})).json()
            document = {
                "name": "mixed",
                "jobs": [
                    job("fetch", "get('/items')", "@openfn/language-http@^6"),
                    job("legacy", "fn(lambda s: s)", "@openfn/language-common@2.1.1")
                    | {"language": "python"},
                ],
                "edges": [{"source_job_id": "fetch", "target_job_id": "legacy"}],
            }
            made = await http.post(f"/api/projects/{project['id']}/workflows", json=document)
            assert made.status_code == 201, made.text
            run = await http.post(f"/api/workflows/{made.json()['id']}/runs", json={"input": {}})
            run_id = run.json()["run_id"]

            async with RawWorker.connect(served.socket_url) as worker:
                await worker.join("worker:queue", {})
                status, claimed = await worker.call(
                    "worker:queue",
                    "claim",
                    {"demand": 1, "worker_name": None, "languages": ["python", "javascript"]},
                )
                assert status == "ok" and [r["id"] for r in claimed["runs"]] == [run_id]
                topic = f"run:{run_id}"
                assert await worker.join(topic, {"token": claimed["runs"][0]["token"]}) == (
                    "ok",
                    {},
                )
                status, plan = await worker.call(topic, "fetch:plan", {})
    assert status == "ok"
    assert [(j["id"], j["adaptor"], j["language"]) for j in plan["jobs"]] == [
        ("fetch", "@openfn/language-http@6.5.1", "javascript"),
        ("legacy", "@openfn/language-common@2.1.1", "python"),
    ]


async def test_the_openapi_document_lists_the_languages(tmp_path: Path) -> None:
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        schema = (await http.get("/openapi.json")).json()
    language = schema["components"]["schemas"]["JobDoc"]["properties"]["language"]
    assert {"type": "string", "enum": ["python", "javascript"]} in language["anyOf"]
    assert "javascript for an @openfn/language-* adaptor" in language["description"]
    assert "/api/adaptors/resolved" in schema["paths"]
