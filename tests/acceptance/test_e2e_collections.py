"""End to end, real processes on loopback (issue 19): jobs reach their project's collections
from inside the sandbox, through the worker's collections gateway, and nothing else.

``fulmen server`` and ``fulmen worker`` as a user runs them, the worker's sandbox with its
default network policy (``outside``: the runs' own network namespace, the host's loopback
unreachable but for the gateway's port). A Python job sets a value that a second run gets;
``each`` walks a pattern; another project's collection is refused; job code that uses the
gateway with a made-up token, for another path, or that goes around it to the coordinator,
gets nothing; a JavaScript job uses OpenFn's own ``@openfn/language-collections``; under the
network policy ``host`` the gateway is reached directly; and under ``none`` the adaptor's
error names the policy.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from fulmen.execution import COLLECTIONS_VERSION, JavaScript
from fulmen.runtime.jshost import COLLECTIONS_PACKAGE
from fulmen_testing.e2e import Api, system
from fulmen_testing.javascript import COMMON
from fulmen_testing.npm_registry import npm_registry

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def project(api: Api, name: str) -> str:
    created = await api.http.post("/api/projects", json={"name": name}, headers=api.headers)
    assert created.status_code in (200, 201), created.text
    project_id: str = created.json()["id"]
    return project_id


async def collection(api: Api, project_id: str, name: str) -> None:
    created = await api.http.post(
        f"/api/projects/{project_id}/collections", json={"name": name}, headers=api.headers
    )
    assert created.status_code == 201, created.text


async def workflow(
    api: Api, project_id: str, jobs: dict[str, str], *, adaptor: str = "common"
) -> str:
    """A workflow of ``jobs`` in a chain behind a webhook; its webhook trigger id. Ids are
    the store's across projects: each gets a suffix of its own."""
    suffix = uuid.uuid4().hex[:8]
    trigger = f"hook-{suffix}"
    ids = [f"{name}-{suffix}" for name in jobs]
    document = {
        "name": f"wf-{suffix}",
        "jobs": [
            {"id": job_id, "name": job_id, "adaptor": adaptor, "body": body}
            for job_id, body in zip(ids, jobs.values(), strict=True)
        ],
        "triggers": [{"id": trigger, "type": "webhook"}],
        "edges": [
            {"source_trigger_id": trigger, "target_job_id": ids[0]},
            *(
                {"source_job_id": a, "target_job_id": b, "condition": "on_job_success"}
                for a, b in itertools.pairwise(ids)
            ),
        ],
    }
    created = await api.http.post(
        f"/api/projects/{project_id}/workflows", json=document, headers=api.headers
    )
    assert created.status_code == 201, created.text
    return trigger


async def run_once(api: Api, hook: str, body: Any = None) -> tuple[dict[str, Any], Any]:
    """Post the webhook, wait for the run; the run and its final state."""
    run = await api.finished(await api.hook(hook, body or {}), timeout=90)
    final = run["final_dataclip_id"]
    return run, (await api.dataclip(final) if final else None)


async def logged(api: Api, run: dict[str, Any]) -> str:
    return "\n".join(line["message"] for line in await api.logs(run["id"]))


SET = 'collections.set("things", "k1", {"n": 1, "name": "first"})\n'
GET = 'collections.get("things", "k1")\n'
SET_MANY = """\
collections.set("things", lambda value, state, index: value["id"], [
    {"id": "p-1", "n": 1}, {"id": "p-2", "n": 2}, {"id": "p-3", "n": 3}, {"id": "q-1", "n": 9},
])
"""
EACH = """\
def keep(state, value, key):
    state.setdefault("seen", []).append([key, value["n"]])

collections.each("things", "p-*", keep)

@fn
def tally(state):
    state["data"] = {"seen": sorted(state.pop("seen"))}
    return state
"""
GET_PATTERN = 'collections.get("things", "p-*")\n'
REMOVE = 'collections.remove("things", "p-*")\n'
OTHER = 'collections.get("secrets", "password")\n'
# More items than a page (1000): set in batches, read back page by page with the cursor.
BULK_SET = """\
collections.set("things", lambda value, state, i: f"bulk-{i:05}", list(range(2500)))
"""
BULK_COUNT = """\
def count(state, value, key):
    state["n"] = state.get("n", 0) + 1
    state["total"] = state.get("total", 0) + value

collections.each("things", "bulk-*", count)

@fn
def report(state):
    state["data"] = {"n": state.pop("n"), "total": state.pop("total")}
    return state
"""

# Job code that goes for more than its collections: the gateway with a made-up token, the
# gateway for another path or method with its own token, and the coordinator straight (the
# port it is handed).
PROBE = """\
# Named so that the run is given collections.: ws-worker's test is the text.
import http.client
import json
import uuid
from urllib.parse import urlsplit

def ask(host, port, method, path, token):
    try:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request(method, path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return [response.status, response.read().decode()[:200]]
    except OSError as exc:
        return ["unreachable", type(exc).__name__]

@fn
def probe(state):
    config = state["configuration"]
    endpoint = urlsplit(config["collections_endpoint"])
    token = config["collections_token"]
    host, port = endpoint.hostname, endpoint.port
    state["data"] = {
        "endpoint": [host, port],
        "made_up": ask(host, port, "GET", "/collections/things/k1", "made-up-token"),
        "no_token": ask(host, port, "GET", "/collections/things/k1", ""),
        "other_path": ask(host, port, "GET", "/api/runs", token),
        "climbing": ask(host, port, "GET", "/collections/..%2Fapi%2Fruns", token),
        "patch": ask(host, port, "PATCH", "/collections/things/k1", token),
        "own": ask(host, port, "GET", "/collections/things/k1", token),
        "coordinator": ask("127.0.0.1", state["data"]["coordinator"], "GET", "/api/runs", ""),
    }
    return state
"""
LEAK = """\
collections.get("things", "k1")

@fn
def leak(state):
    print("got", state["data"], "with", state["configuration"]["collections_token"])
    state["data"] = {"token": state["configuration"]["collections_token"]}
    return state
"""


async def test_python_jobs_share_values_across_runs_and_reach_nothing_else(
    tmp_path: Path,
) -> None:
    async with system(tmp_path) as (server, _, api):
        ours, theirs = await asyncio.gather(project(api, "ours"), project(api, "theirs"))
        await collection(api, ours, "things")
        await collection(api, theirs, "secrets")
        hooks = await asyncio.gather(
            *(
                workflow(api, ours, {name: body})
                for name, body in [
                    ("set", SET),
                    ("get", GET),
                    ("set_many", SET_MANY),
                    ("each", EACH),
                    ("get_pattern", GET_PATTERN),
                    ("remove", REMOVE),
                    ("other", OTHER),
                    ("bulk_set", BULK_SET),
                    ("bulk_count", BULK_COUNT),
                    ("leak", LEAK),
                    ("probe", PROBE),
                ]
            )
        )
        set_, get, set_many, each, get_pattern, remove, other, bulk_set, bulk_count, leak, probe = (
            hooks
        )
        theirs_get = await workflow(api, theirs, {"get": GET})
        theirs_set = await workflow(api, theirs, {"set": 'collections.set("secrets", "k", 1)\n'})

        # One run sets, the next gets.
        run, _ = await run_once(api, set_)
        assert run["state"] == "success", run
        run, final = await run_once(api, get)
        assert run["state"] == "success", run
        assert final["data"] == {"n": 1, "name": "first"}
        # The other project's runs cannot read ours; theirs write their own.
        run, _ = await run_once(api, theirs_get)
        assert (run["state"], run["error_type"]) == ("failed", "CollectionsError"), run
        assert 'the collection "things" does not exist in this run' in run["error_message"]
        run, _ = await run_once(api, theirs_set)
        assert run["state"] == "success", run

        # Many values keyed by a function; each over a pattern, one at a time.
        run, _ = await run_once(api, set_many)
        assert run["state"] == "success", run
        run, final = await run_once(api, each)
        assert run["state"] == "success", run
        assert final["data"] == {"seen": [["p-1", 1], ["p-2", 2], ["p-3", 3]]}
        run, final = await run_once(api, get_pattern)
        assert sorted((i["key"], i["value"]["n"]) for i in final["data"]) == [
            ("p-1", 1),
            ("p-2", 2),
            ("p-3", 3),
        ]
        run, _ = await run_once(api, remove)
        assert run["state"] == "success", run
        run, final = await run_once(api, get_pattern)
        assert (run["state"], final["data"]) == ("success", []), run

        run, _ = await run_once(api, bulk_set)
        assert run["state"] == "success", run
        run, final = await run_once(api, bulk_count)
        assert run["state"] == "success", run
        assert final["data"] == {"n": 2500, "total": sum(range(2500))}

        # Another project's collection: refused, as one that does not exist.
        run, final = await run_once(api, other)
        assert run["state"] == "failed", run
        assert run["error_type"] == "CollectionsError", run
        assert 'the collection "secrets" does not exist in this run' in run["error_message"]

        # The token a run's jobs got is masked in what they output.
        run, final = await run_once(api, leak)
        assert run["state"] == "success", run
        assert final["data"] == {"token": "***"}
        assert "got {'n': 1, 'name': 'first'} with ***" in await logged(api, run)

        run, final = await run_once(api, probe, {"coordinator": server.port})
        assert run["state"] == "success", (run, await logged(api, run))
        seen = final["data"]
        assert seen["made_up"][0] == 401 and "unauthorized" in seen["made_up"][1]
        assert seen["no_token"][0] == 401
        assert seen["other_path"][0] == 404
        assert seen["climbing"][0] == 400
        assert seen["patch"][0] == 405
        assert seen["own"][0] == 200 and "first" in seen["own"][1]
        assert seen["coordinator"] == ["unreachable", "ConnectionRefusedError"]
        assert seen["endpoint"][1] != server.port


async def test_a_javascript_job_uses_openfn_s_collections_adaptor(
    tmp_path: Path, javascript: JavaScript
) -> None:
    await javascript.repo.adaptor(COLLECTIONS_PACKAGE, COLLECTIONS_VERSION, lambda line: None)
    with npm_registry() as registry:
        async with system(
            tmp_path,
            coordinator={"FULMEN_NPM_REGISTRY": registry.url},
            worker={"WORKER_REPO_DIR": str(javascript.repo.root)},
        ) as (_, _, api):
            ours = await project(api, "js")
            await collection(api, ours, "things")
            hook = await workflow(
                api,
                ours,
                {
                    "put": "collections.set('things', 'js-1', { n: 7 });\n",
                    "read": "collections.get('things', 'js-1');\n"
                    "fn(state => ({ data: { got: state.data } }));\n",
                },
                adaptor=COMMON,
            )
            run, final = await run_once(api, hook)
            assert run["state"] == "success", (run, await logged(api, run))
            assert final["data"] == {"got": {"n": 7}}


async def test_under_the_network_policy_none_the_error_names_it(
    tmp_path: Path, javascript: JavaScript
) -> None:
    await javascript.repo.adaptor(COLLECTIONS_PACKAGE, COLLECTIONS_VERSION, lambda line: None)
    with npm_registry() as registry:
        async with system(
            tmp_path,
            coordinator={"FULMEN_NPM_REGISTRY": registry.url},
            worker={"FULMEN_NETWORK": "none", "WORKER_REPO_DIR": str(javascript.repo.root)},
        ) as (_, _, api):
            ours = await project(api, "none")
            await collection(api, ours, "things")
            python = await workflow(api, ours, {"get": GET})
            js = await workflow(
                api, ours, {"get": "collections.get('things', 'k1');\n"}, adaptor=COMMON
            )
            for hook in (python, js):
                run, _ = await run_once(api, hook)
                assert run["state"] == "failed", run
                assert "network policy is none" in run["error_message"], run


async def test_under_the_network_policy_host_jobs_reach_the_gateway_directly(
    tmp_path: Path,
) -> None:
    async with system(tmp_path, worker={"FULMEN_NETWORK": "host"}) as (_, _, api):
        ours = await project(api, "host")
        await collection(api, ours, "things")
        set_, get = await asyncio.gather(
            workflow(api, ours, {"set": SET}), workflow(api, ours, {"get": GET})
        )
        run, _ = await run_once(api, set_)
        assert run["state"] == "success", run
        run, final = await run_once(api, get)
        assert (run["state"], final["data"]) == ("success", {"n": 1, "name": "first"}), run
