"""The runner's OpenAPI document stays true (issue 21): every route of ``routes()`` is in it with
its methods and path parameters and every documented operation is a route, so a route added
without documentation fails here; it is valid OpenAPI; the runner serves it without a token;
and a served runner's real answers, refusals included, are documented for their operation and
match the schemas given for them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route

from fulmen.runner.api import routes
from fulmen.runner.openapi import document
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import ECHO

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

DOC_URI = "urn:fulmen-runner-openapi"
#: The operations of an OpenAPI path item; its other keys (parameters, summary…) are not.
OPERATIONS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def routed() -> dict[str, set[str]]:
    """Each route's path, as OpenAPI writes it (``{rest:path}`` is ``{rest}``), and its
    methods; Starlette adds HEAD to every GET by itself, so HEAD counts only where a route
    names it without GET."""
    found: dict[str, set[str]] = {}
    for route in routes():
        assert isinstance(route, Route) and route.methods is not None
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        methods = {m.lower() for m in route.methods}
        found.setdefault(path, set()).update(methods)
    return found


def documented() -> dict[str, set[str]]:
    return {path: set(item) & OPERATIONS for path, item in document()["paths"].items()}


def test_every_route_is_documented_and_every_documented_operation_is_a_route() -> None:
    routes_, doc = routed(), documented()
    assert set(routes_) == set(doc), "document these paths, or remove them from the document"
    for path, methods in routes_.items():
        implied = {"head"} if "get" in methods else set()
        assert doc[path] - {"head"} == methods - {"head"}, path
        assert doc[path] & {"head"} <= methods, path
        assert implied <= methods


def test_every_path_parameter_is_declared() -> None:
    for path, item in document()["paths"].items():
        named = set(re.findall(r"\{(\w+)\}", path))
        shared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        for method in set(item) & OPERATIONS:
            own = {p["name"] for p in item[method].get("parameters", []) if p["in"] == "path"}
            assert shared | own == named, f"{method} {path}"


def test_the_document_is_valid_openapi_and_names_each_operation_once() -> None:
    validate(document())
    ids = [
        item[method]["operationId"]
        for item in document()["paths"].values()
        for method in set(item) & OPERATIONS
    ]
    assert len(ids) == len(set(ids))


class Answers:
    """Checks answers against the document: the status is one documented for the operation
    (or its ``default``), and the body matches that response's schema."""

    def __init__(self) -> None:
        self.doc = document()
        self.registry: Registry[Any] = Registry().with_resource(
            DOC_URI, Resource(contents=self.doc, specification=DRAFT202012)
        )
        self.checked: set[tuple[str, str, str]] = set()

    def check(self, method: str, path: str, answer: httpx2.Response) -> Any:
        operation = self.doc["paths"][path][method]
        status = str(answer.status_code)
        response = operation["responses"].get(status) or operation["responses"].get("default")
        assert response is not None, f"{method} {path} answered {status}: {answer.text}"
        if "$ref" in response:
            response = self.doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        self.checked.add((method, path, status))
        content = response.get("content")
        if content is None:  # 204, or a worker's own answer to its HTTP trigger: any body
            assert status != "204" or answer.content == b"", f"{method} {path}: {answer.text}"
            return None
        schema = content["application/json"]["schema"]
        body = answer.json()
        validator = Draft202012Validator(_rooted(schema), registry=self.registry)
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, f"{method} {path} {status}: {errors}"
        return body


def _rooted(schema: Any) -> Any:
    """``schema`` with its references pointing into the document, wherever it is used."""
    text = json.dumps(schema).replace('"#/components/', f'"{DOC_URI}#/components/')
    return json.loads(text)


async def test_served_without_a_token_and_every_answer_matches_its_schema(tmp_path: Path) -> None:
    check = Answers()
    async with served(tmp_path / "state") as s:
        async with httpx2.AsyncClient(base_url=s.url) as anonymous:
            served_doc = await anonymous.get("/openapi.json")
            assert served_doc.status_code == 200
            assert served_doc.json() == json.loads(json.dumps(document()))
            check.check("get", "/openapi.json", served_doc)
            check.check("get", "/healthz", await anonymous.get("/healthz"))
            check.check("get", "/workers", await anonymous.get("/workers"))  # 401
        worker_id = await _workers(s, check, tmp_path)
        await _identities(s, check)
        gone = await s.http.delete(f"/workers/{worker_id}", params={"purge_key": "1"})
        assert gone.status_code == 204
        check.check("delete", "/workers/{ref}", gone)
        check.check("delete", "/workers/{ref}", await s.http.delete(f"/workers/{worker_id}"))
    answered = {(method, path) for method, path, _ in check.checked}
    # every operation met a real answer (the HTTP trigger's seven methods: two of them)
    unanswered = {
        (method, path)
        for path, methods in documented().items()
        for method in methods
        if "/fetch" not in path
    } - answered
    assert not unanswered, "answer these in this test too"


async def _workers(s: Served, check: Answers, tmp_path: Path) -> str:
    fields = {"script": ECHO, "name": "doc", "schedule": "*/5 * * * *", "config": {"k": "v"}}
    made = check.check("post", "/workers", await s.http.post("/workers", json=fields))
    form = {"script": ECHO, "events": "a, b", "run_on_create": "false"}
    check.check("post", "/", await s.http.post("/", data=form))
    files = {"script": ("w.py", ECHO.encode()), "config": ("c.json", b'{"k": 1}')}
    check.check("post", "/workers", await s.http.post("/workers", files=files))
    check.check("post", "/workers", await s.http.post("/workers", json={**fields}))  # 409
    check.check("post", "/workers", await s.http.post("/workers", json={"script": "x", "cron": 1}))
    text = {"content-type": "text/plain"}
    check.check("post", "/workers", await s.http.post("/workers", content=b"x", headers=text))
    worker = made["id"]
    await s.runner.logbook.wait_for(worker, lambda r: r.get("event") == "run_ended")
    check.check("get", "/workers", await s.http.get("/workers"))
    check.check("get", "/workers/{ref}", await s.http.get("/workers/doc"))
    check.check("get", "/workers/{ref}", await s.http.get("/workers/nobody"))  # 404
    started = check.check("post", "/workers/{ref}/run", await s.http.post(f"/workers/{worker}/run"))
    await s.runner.logbook.wait_for(
        worker, lambda r: r.get("event") == "run_ended" and r.get("run_id") == started["run_id"]
    )
    check.check("get", "/workers/{ref}/runs", await s.http.get(f"/workers/{worker}/runs"))
    check.check("get", "/workers/{ref}/runs", await s.http.get(f"/workers/{worker}/runs?limit=0"))
    check.check("get", "/workers/{ref}/logs", await s.http.get(f"/workers/{worker}/logs"))
    since = await s.http.get(f"/workers/{worker}/logs", params={"since": "2026-01-01T00:00:00Z"})
    check.check("get", "/workers/{ref}/logs", since)
    check.check("post", "/workers/{ref}/restart", await s.http.post(f"/workers/{worker}/restart"))
    answered = await s.http.post(f"/workers/{worker}/fetch/a?b=1", content=b"hi")
    check.check("post", "/workers/{ref}/fetch/{rest}", answered)
    check.check("get", "/workers/{ref}/fetch", await s.http.get("/workers/nobody/fetch"))
    check.check("post", "/events/{topic}", await s.http.post("/events/a", json={"n": 1}))
    check.check("post", "/events/{topic}", await s.http.post("/events/NOT%20A%20TOPIC", json=1))
    return str(worker)


async def _identities(s: Served, check: Answers) -> None:
    policy = {"scripts": ["0" * 64]}
    made = await s.http.post("/identities", json={"name": "team", "policy": policy})
    body = check.check("post", "/identities", made)
    check.check("get", "/identities/{name}", await s.http.get("/identities/team"))
    check.check("get", "/identities/{name}", await s.http.get("/identities/nobody"))
    put = {"policy": {"scripts": ["1" * 64]}}
    check.check("put", "/identities/{name}", await s.http.put("/identities/team", json=put))
    headers = {"x-identity-token": body["admin_token"]}
    replaced = await s.http.put("/identities/team", json=put, headers=headers)
    assert replaced.status_code == 200
    check.check("put", "/identities/{name}", replaced)
