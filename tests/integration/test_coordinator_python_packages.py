"""Issue 16 through the REST API, over loopback: a Python job's package adaptor and
requirements saved at exact versions, resolved against a package index (a small one on
loopback serving real wheels: the outside world's edge) with the uv the workers use; what is
refused and that a refusal saves nothing; and the plan a worker then receives.

The index serves ``fulmen-probe`` 1.0.0 and 2.0.0 and ``fulmen-adaptor-demo`` 0.1.0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator import Coordinator
from fulmen.packages.pypi import PythonRepo
from fulmen.store import SQLStore
from fulmen_testing.coordinator import RawWorker, api_token, serve, sqlite_store
from fulmen_testing.npm_registry import closed_url
from fulmen_testing.python_index import Index, python_index

pytestmark = pytest.mark.anyio

COUNT_JS = "fn(state => state);"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def index() -> Iterator[Index]:
    with python_index() as served:
        yield served


@dataclass
class Api:
    http: httpx2.AsyncClient
    store: SQLStore
    project_id: str
    socket_url: str
    coordinator: Coordinator

    async def create(self, *jobs: dict[str, Any], **workflow: Any) -> httpx2.Response:
        document = {"name": "sync", "jobs": list(jobs), **workflow}
        return await self.http.post(f"/api/projects/{self.project_id}/workflows", json=document)

    async def replace(self, workflow_id: str, *jobs: dict[str, Any]) -> httpx2.Response:
        document = {"name": "sync", "jobs": list(jobs)}
        return await self.http.put(f"/api/workflows/{workflow_id}", json=document)

    async def workflows(self) -> list[dict[str, Any]]:
        answer = await self.http.get(f"/api/projects/{self.project_id}/workflows")
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


@asynccontextmanager
async def api(tmp_path: Path, index_url: str) -> AsyncIterator[Api]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        token = await api_token(store)
        async with (
            serve(store, python_index=index_url, data_dir=str(tmp_path / "data")) as served,
            httpx2.AsyncClient(
                base_url=served.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            ) as http,
        ):
            project = (await http.post("/api/projects", json={"name": "p"})).json()
            yield Api(http, store, project["id"], served.socket_url, served.coordinator)


def job(job_id: str, adaptor: str = "common", *requirements: str, **more: Any) -> dict[str, Any]:
    document = {"id": job_id, "name": job_id, "body": "fn(lambda s: s)", "adaptor": adaptor}
    return {**document, "requirements": list(requirements), **more}


def pins(document: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    return [(j["id"], j["adaptor"], j["requirements"]) for j in document["jobs"]]


async def fetched_plan(a: Api, workflow_id: str) -> dict[str, Any]:
    """The plan a worker fetches for a new run of the workflow."""
    run = await a.http.post(f"/api/workflows/{workflow_id}/runs", json={"input": {}})
    run_id = run.json()["run_id"]
    async with RawWorker.connect(a.socket_url) as worker:
        await worker.join("worker:queue", {})
        status, claimed = await worker.call(
            "worker:queue", "claim", {"demand": 1, "worker_name": None, "languages": ["python"]}
        )
        assert status == "ok" and [r["id"] for r in claimed["runs"]] == [run_id]
        topic = f"run:{run_id}"
        assert await worker.join(topic, {"token": claimed["runs"][0]["token"]}) == ("ok", {})
        status, plan = await worker.call(topic, "fetch:plan", {})
    assert status == "ok"
    return dict(plan)


async def test_a_save_pins_each_package_and_the_plan_a_worker_fetches_carries_the_pins(
    tmp_path: Path, index: Index
) -> None:
    async with api(tmp_path, index.url) as a:
        made = await a.create(
            job("fetch", "fulmen-probe@latest", "fulmen-adaptor-demo>=0.1"),
            job("report", "common", "fulmen_probe"),
            job("plain", "http"),
            job("local", "yaml"),
        )
        assert made.status_code == 201, made.text
        expected = [
            ("fetch", "fulmen-probe@2.0.0", ["fulmen-adaptor-demo==0.1.0"]),
            ("report", "common", ["fulmen_probe==2.0.0"]),
            ("plain", "http", []),
            ("local", "yaml", []),
        ]
        assert pins(made.json()) == expected
        read = (await a.http.get(f"/api/workflows/{made.json()['id']}")).json()
        assert pins(read) == expected
        snapshot = (await a.http.get(f"/api/snapshots/{made.json()['snapshot_id']}")).json()
        assert pins(snapshot["workflow"]) == expected
        plan = await fetched_plan(a, made.json()["id"])
    assert [(j["id"], j["adaptor"], j.get("requirements")) for j in plan["jobs"]] == [
        ("fetch", "fulmen-probe@2.0.0", ["fulmen-adaptor-demo==0.1.0"]),
        ("report", "common", ["fulmen_probe==2.0.0"]),
        ("plain", "http", None),  # none: the key is left out
        ("local", "yaml", None),
    ]


@pytest.mark.parametrize(
    ("adaptor", "requirement", "saved"),
    [
        ("fulmen-probe@latest", "fulmen-adaptor-demo", "fulmen-probe@2.0.0"),
        ("fulmen-probe@>=1,<2", "fulmen-adaptor-demo@latest", "fulmen-probe@1.0.0"),
        ("fulmen-probe==1.0.0", "fulmen-adaptor-demo@0.1.0", "fulmen-probe@1.0.0"),
        ("fulmen-probe@1", "fulmen-adaptor-demo~=0.1", "fulmen-probe@1.0.0"),
        ("fulmen_probe@<2", "Fulmen.Adaptor_Demo", "fulmen_probe@1.0.0"),
    ],
)
async def test_latest_ranges_and_exact_versions_are_saved_as_the_version_uv_picks(
    tmp_path: Path, index: Index, adaptor: str, requirement: str, saved: str
) -> None:
    async with api(tmp_path, index.url) as a:
        made = await a.create(job("fetch", adaptor, requirement))
        assert made.status_code == 201, made.text
        name = requirement.partition("@")[0].partition("~")[0]
        assert pins(made.json()) == [("fetch", saved, [f"{name}==0.1.0"])]


async def test_a_builtin_or_module_adaptor_needs_no_index(tmp_path: Path) -> None:
    async with api(tmp_path, closed_url()) as a:
        made = await a.create(
            job("a", "common"),
            job("b", "@openfn/language-http@6.5.1", language="python"),
            job("c", "mycompany.adaptors.crm"),
        )
        assert made.status_code == 201, made.text
        assert [j["adaptor"] for j in made.json()["jobs"]] == [
            "common",
            "@openfn/language-http@6.5.1",
            "mycompany.adaptors.crm",
        ]


@pytest.mark.parametrize(
    ("adaptor", "requirements", "code", "field", "says"),
    [
        (
            "fulmen-probe@9.9.9",
            (),
            "unknown_package_version",
            "jobs[1].adaptor",
            "job 'load' (load): fulmen-probe@9.9.9 cannot be installed from the Python package "
            "index {index}: Because there is no version of fulmen-probe==9.9.9 and you require "
            "fulmen-probe==9.9.9, we can conclude that your requirements are unsatisfiable.",
        ),
        (
            "common",
            ("fulmen-probe", "fulmen-nowhere>=1"),
            "unknown_package",
            "jobs[1].requirements[1]",
            "job 'load' (load): fulmen-nowhere>=1 cannot be installed from the Python package "
            "index {index}: Because fulmen-nowhere was not found in the package registry and "
            "you require fulmen-nowhere>=1, we can conclude that your requirements are "
            "unsatisfiable.",
        ),
        (
            "fulmen-probe@>=3",
            (),
            "unknown_package_version",
            "jobs[1].adaptor",
            "job 'load' (load): fulmen-probe@>=3 cannot be installed",
        ),
        (
            "common",
            ("fulmen-probe<0",),
            "unknown_package_version",
            "jobs[1].requirements[0]",
            "job 'load' (load): fulmen-probe<0 cannot be installed from the Python package "
            "index {index}: you require fulmen-probe<0, which does not allow any versions",
        ),
        (  # a marker that leaves it out on this Python
            "common",
            ("fulmen-probe; python_version < '3'",),
            "unknown_package_version",
            "jobs[1].requirements[0]",
            "job 'load' (load): fulmen-probe; python_version < '3' cannot be installed from "
            "the Python package index {index}: fulmen-probe: uv gave no version for it",
        ),
        (  # packaging takes any text after ===, uv a version only
            "fulmen-probe===two",
            (),
            "bad_requirement",
            "jobs[1].adaptor",
            "job 'load' (load): fulmen-probe===two cannot be installed from the Python "
            "package index {index}: expected version to start with a number",
        ),
    ],
)
async def test_a_package_the_index_does_not_have_saves_nothing(
    tmp_path: Path,
    index: Index,
    adaptor: str,
    requirements: tuple[str, ...],
    code: str,
    field: str,
    says: str,
) -> None:
    async with api(tmp_path, index.url) as a:
        refused = await a.create(job("fetch", "http"), job("load", adaptor, *requirements))
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["field"]) == (code, field)
        assert error["message"].startswith(says.format(index=index.url))
        assert await a.workflows() == []


async def test_uv_wrapping_its_message_to_a_narrow_terminal_reads_the_same(
    tmp_path: Path, index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv wraps to ``COLUMNS`` (pytest-xdist's workers have it narrow): the refusal was then
    read as the user's unreadable requirement, and the message cut at the first line."""
    monkeypatch.setenv("COLUMNS", "40")
    async with api(tmp_path, index.url) as a:
        refused = await a.create(job("load", "fulmen-probe@9.9.9"))
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == {
            "code": "unknown_package_version",
            "field": "jobs[0].adaptor",
            "message": "job 'load' (load): fulmen-probe@9.9.9 cannot be installed from the "
            f"Python package index {index.url}: Because there is no version of "
            "fulmen-probe==9.9.9 and you require fulmen-probe==9.9.9, we can conclude that "
            "your requirements are unsatisfiable.",
        }


async def test_two_jobs_pinning_one_package_at_two_versions_are_refused_before_the_index(
    tmp_path: Path, index: Index
) -> None:
    """A workflow's Python jobs share one environment."""
    async with api(tmp_path, index.url) as a:
        refused = await a.create(
            job("old", "fulmen-probe@1.0.0"), job("new", "common", "fulmen-probe==2.0.0")
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == {
            "code": "conflicting_requirements",
            "message": "fulmen-probe is pinned at 1.0.0 by job 'old' and at 2.0.0 by job "
            "'new': a workflow's Python jobs share one environment",
        }
        assert index.requests == [] and await a.workflows() == []


async def test_requirements_no_version_meets_together_name_both_jobs(
    tmp_path: Path, index: Index
) -> None:
    async with api(tmp_path, index.url) as a:
        refused = await a.create(
            job("old", "fulmen-probe@1.0.0"), job("new", "common", "fulmen-probe>=2")
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "conflicting_requirements"
        assert error["message"].startswith(
            "job 'old' (old), job 'new' (new): fulmen-probe@1.0.0, fulmen-probe>=2 cannot be "
            f"installed together from the Python package index {index.url}: "
        )
        assert await a.workflows() == []


async def test_jobs_asking_one_package_loosely_share_the_version_uv_picks(
    tmp_path: Path, index: Index
) -> None:
    async with api(tmp_path, index.url) as a:
        made = await a.create(
            job("any", "common", "fulmen-probe"), job("old", "common", "fulmen-probe<2")
        )
        assert made.status_code == 201, made.text
        assert [j["requirements"] for j in made.json()["jobs"]] == [
            ["fulmen-probe==1.0.0"],
            ["fulmen-probe==1.0.0"],
        ]


@pytest.mark.parametrize(
    ("jobs", "code", "field", "message"),
    [
        (
            [job("fetch", "common", "httpx>>1")],
            "bad_requirement",
            "jobs[0].requirements[0]",
            "job 'fetch' (fetch): requirement 'httpx>>1': ",
        ),
        (
            [job("fetch", "common", "fulmen-probe @ https://example.org/probe.whl")],
            "bad_requirement",
            "jobs[0].requirements[0]",
            "job 'fetch' (fetch): requirement 'fulmen-probe @ https://example.org/probe.whl': "
            "a URL or path is not accepted, only a package the index serves",
        ),
        (
            [job("fetch"), job("load", "not an adaptor")],
            "bad_adaptor",
            "jobs[1].adaptor",
            "job 'load' (load): 'not an adaptor' is not an adaptor a Python job can use",
        ),
        (
            [job("count", "common", "lodash", body=COUNT_JS, language="javascript")],
            "bad_requirement",
            "jobs[0].requirements",
            "job 'count' (count): requirements are for Python jobs; a JavaScript job's package "
            "is its adaptor",
        ),
    ],
)
async def test_a_requirement_or_adaptor_that_cannot_be_read_is_named_by_job_and_field(
    tmp_path: Path,
    index: Index,
    jobs: list[dict[str, Any]],
    code: str,
    field: str,
    message: str,
) -> None:
    async with api(tmp_path, index.url) as a:
        refused = await a.create(*jobs)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["field"]) == (code, field)
        assert error["message"].startswith(message), error["message"]
        assert index.requests == [] and await a.workflows() == []


async def test_an_index_that_cannot_be_reached_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's own setting: refused at once, not in 7 s
    down = closed_url().rstrip("/") + "/simple"
    async with api(tmp_path, down) as a:
        refused = await a.create(job("fetch", "fulmen-probe@latest"))
        assert refused.status_code == 502, refused.text
        error = refused.json()["error"]
        assert error["code"] == "registry_unreachable"
        assert error["message"].startswith(
            f"the Python package index {down} could not be reached: "
        )
        assert "Connection refused" in error["message"]  # uv's reason
        assert await a.workflows() == []


async def test_a_save_that_keeps_its_pins_does_not_need_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins the version being replaced had were found when it was saved: editing a body, or
    adding a job with no packages, asks the index nothing, so it works while the index is
    down. A new package is asked about, and refused while the index is down."""
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with python_index() as index:
        async with api(tmp_path, index.url) as a:
            first = job("fetch", "fulmen-probe@latest", "fulmen-adaptor-demo")
            made = (await a.create(first)).json()
            asked = len(index.requests)
            kept = {**made["jobs"][0], "body": "fn(lambda s: {**s, 'edited': True})"}
            edited = await a.replace(made["id"], kept, job("more"))
            assert edited.status_code == 200, edited.text
            assert pins(edited.json())[0] == (
                "fetch",
                "fulmen-probe@2.0.0",
                ["fulmen-adaptor-demo==0.1.0"],
            )
            assert len(index.requests) == asked
    down = closed_url().rstrip("/") + "/simple"
    async with api(tmp_path / "again", down) as a:
        made = (await a.create(job("fetch"))).json()
        refused = await a.replace(made["id"], job("fetch", "fulmen-probe@2.0.0"))
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "registry_unreachable"


async def test_deploy_asks_what_a_save_would_keep_without_saving(
    tmp_path: Path, index: Index
) -> None:
    async with api(tmp_path, index.url) as a:
        asked = {
            "jobs": [
                {"name": "fetch", "adaptor": "fulmen-probe@latest"},
                {"name": "report", "requirements": ["fulmen-adaptor-demo"]},
                {"name": "count", "adaptor": "@openfn/language-common@3.3.4"},
            ]
        }
        answer = await a.http.post("/api/python-packages/resolved", json=asked)
        assert answer.status_code == 200, answer.text
        assert [tuple(item.values()) for item in answer.json()["jobs"]] == [
            ("fetch", "fulmen-probe@2.0.0", []),
            ("report", "common", ["fulmen-adaptor-demo==0.1.0"]),
            ("count", "@openfn/language-common@3.3.4", []),
        ]
        refused = await a.http.post(
            "/api/python-packages/resolved",
            json={"jobs": [{"name": "fetch", "adaptor": "fulmen-probe@7"}]},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "jobs[0].adaptor"
        assert await a.workflows() == []


async def test_the_openapi_document_describes_requirements(tmp_path: Path) -> None:
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        schema = (await http.get("/openapi.json")).json()
    requirements = schema["components"]["schemas"]["JobDoc"]["properties"]["requirements"]
    assert requirements["type"] == "array"
    assert requirements["items"] == {"type": "string", "minLength": 1, "maxLength": 500}
    assert "saved, and read back, at the exact version" in requirements["description"].lower()
    assert "/api/python-packages/resolved" in schema["paths"]


async def test_a_coordinator_without_uv_refuses_only_saves_that_need_it(
    tmp_path: Path, index: Index
) -> None:
    async with api(tmp_path, index.url) as a:
        a.coordinator.python_repo = PythonRepo(tmp_path, index=index.url, uv=str(tmp_path / "uv"))
        refused = await a.create(job("fetch", "fulmen-probe@latest"))
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "no_uv"
        assert error["message"].startswith(
            "Python packages cannot be resolved on this coordinator: fulmen-probe: uv could not "
            "be started"
        )
        assert (await a.create(job("fetch", "http"))).status_code == 201
