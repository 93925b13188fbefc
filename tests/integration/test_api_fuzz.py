"""The REST API against requests generated from its own OpenAPI document (schemathesis), on a
real ``fulmen server`` over loopback: no input the schema allows may get a 5xx, no input it
forbids may be accepted, and every answer must fit the schema.

A bounded run (a fixed seed, a few examples per operation; well under a minute on two
cores). The exploratory run that found the 500s this guards against (integers beyond 64 bits
in a credential's body, retention periods that overflowed the sweep's dates, ``until=0.5``
taken as a timestamp) was ``st run`` with thousands of cases; to repeat one::

    st run http://127.0.0.1:4000/openapi.json -H "Authorization: Bearer $TOKEN" \\
        --checks all --max-examples 300 --seed 2
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi import checks as openapi_checks

from fulmen import keys as keyring
from fulmen.coordinator.api.schemas.common import MAX_JSON_DEPTH, MAX_RETENTION_DAYS
from fulmen_testing.npm_registry import npm_registry
from fulmen_testing.python_index import python_index

FULMEN = (sys.executable, "-m", "fulmen")
SEED = 13
EXAMPLES_PER_OPERATION = 12
#: Fewer means generation went wrong (an operation skipped, a schema not loaded).
MIN_CASES = 300
START_TIMEOUT = 30.0

#: What is checked of every answer. Not checked: the ``Allow`` header of a 405 (Starlette's
#: lists the methods of one route, not of the path), and rejected "valid" data: rules across
#: fields (a body retention longer than the history's) the schema cannot say.
CHECKS = [
    checks.not_a_server_error,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]
#: And under /api, only the status codes the schema lists (the webhook and health routes
#: are not this schema's to document yet).
API_CHECKS = [*CHECKS, openapi_checks.status_code_conformance]


class Server:
    def __init__(self, data_dir: Path, npm_registry: str, python_index: str) -> None:
        keys = keyring.generate()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
        self.env = {
            **base,
            "WORKER_SECRET": keys.worker_secret,
            "WORKER_RUNS_PRIVATE_KEY": keys.private_key,
            "FULMEN_DATA_DIR": str(data_dir),
            # JavaScript jobs' adaptors are resolved against a registry on loopback: an
            # adaptor it does not have is a 422, as the real registry's would be.
            "FULMEN_NPM_REGISTRY": npm_registry,
            # …and Python jobs' packages against an index on loopback, never PyPI.
            "FULMEN_PYTHON_INDEX": python_index,
        }
        made = subprocess.run(
            [*FULMEN, "server", "token", "create", "--name", "fuzz"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = made.stdout.strip().splitlines()[-1]
        self.log = (data_dir / "server.log").open("w+")
        self.process = subprocess.Popen(
            [*FULMEN, "server", "--host", "127.0.0.1", "--port", "0", "--log", "warning"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{self._port()}"
        self.ids = self._seed()

    def _seed(self) -> dict[str, str]:
        """A project, a workflow, a credential, a webhook auth method and a run: the ids that
        path parameters take half the time, so that bodies reach the store (a credential's
        body is stored only in a project that exists)."""
        with httpx2.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}
        ) as http:

            def post(path: str, document: dict[str, object]) -> dict[str, str]:
                response = http.post(path, json=document)
                assert response.status_code == 201, response.text
                made: dict[str, str] = response.json()
                return made

            project = post("/api/projects", {"name": "fuzz"})["id"]
            workflow = post(
                f"/api/projects/{project}/workflows",
                {
                    "name": "fuzz",
                    "jobs": [{"id": "fuzz-job", "body": "fn(lambda s: s)", "adaptor": "common"}],
                    "triggers": [{"id": "fuzz-trigger"}],
                    "edges": [{"source_trigger_id": "fuzz-trigger", "target_job_id": "fuzz-job"}],
                },
            )
            credential = post(f"/api/projects/{project}/credentials", {"name": "c", "body": {}})
            method = post(
                f"/api/projects/{project}/webhook_auth_methods", {"name": "m", "auth_type": "api"}
            )
            run = post(f"/api/workflows/{workflow['id']}/runs", {"input": {}})
        return {
            "project_id": project,
            "workflow_id": workflow["id"],
            "snapshot_id": workflow["snapshot_id"],
            "trigger_id": "fuzz-trigger",
            "credential_id": credential["id"],
            "method_id": method["id"],
            "run_id": run["run_id"],
            "work_order_id": run["work_order_id"],
        }

    def _port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.log.seek(0)
            found = re.search(r"listening on http://[\d.]+:(\d+)", self.log.read())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        self.log.seek(0)
        raise AssertionError(f"fulmen server did not start:\n{self.log.read()}")

    def errors(self) -> str:
        self.log.seek(0)
        return "\n".join(line for line in self.log.read().splitlines() if "Traceback" in line)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with npm_registry() as registry, python_index() as index:
        served = Server(tmp_path_factory.mktemp("fuzz"), registry.url, index.url)
        yield served
        served.stop()


# -- what the exploratory run found, one request each -----------------------------------------


def _api(
    server: Server,
    method: str,
    path: str,
    document: object = None,
    params: dict[str, str] | None = None,
) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    # Python's own encoder: lone surrogates as escapes, integers of any size, as a client may
    content = None if document is None else json.dumps(document).encode()
    with httpx2.Client(base_url=server.base_url, headers=headers) as http:
        return http.request(method, path, content=content, params=params)


def _refused(response: httpx2.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert [error["loc"][-1] for error in errors] == [field], errors
    assert len(response.content) < 1000


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 1e300, "\udc00", "\x00", {"\x00": 1}, _nested(MAX_JSON_DEPTH + 1)],
    ids=["2^64", "below -2^63", "1e300", "lone surrogate", "NUL", "NUL key", "too deep"],
)
def test_a_json_body_the_store_cannot_keep_is_a_422(server: Server, value: object) -> None:
    """A credential's body and a manual run's input: the credential was a 500."""
    project, credential = server.ids["project_id"], server.ids["credential_id"]
    document = {"name": "c", "body": {"key": [value]}}
    _refused(_api(server, "POST", f"/api/projects/{project}/credentials", document), "body")
    path = f"/api/projects/{project}/credentials/{credential}"
    _refused(_api(server, "PUT", path, document), "body")
    path = f"/api/workflows/{server.ids['workflow_id']}/runs"
    _refused(_api(server, "POST", path, {"input": {"key": [value]}}), "input")


def test_the_deepest_and_largest_json_the_store_keeps_is_taken(server: Server) -> None:
    project = server.ids["project_id"]
    body = {"deep": _nested(MAX_JSON_DEPTH - 1), "max": 2**63 - 1, "min": -(2**63)}
    made = _api(server, "POST", f"/api/projects/{project}/credentials", {"name": "c", "body": body})
    assert made.status_code == 201, made.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("history_retention_period", 2**64),
        ("history_retention_period", MAX_RETENTION_DAYS + 1),
        ("dataclip_retention_period", 10**9),
        ("concurrency", 2**31),
        ("concurrency", True),
        ("id", ""),
        ("id", "a/b"),  # made, then never found: a path cannot carry it
    ],
)
def test_a_project_field_beyond_what_is_stored_is_a_422(
    server: Server, field: str, value: object
) -> None:
    """Retention periods beyond 64 bits were a 500; below that, a period the sweep's dates
    could not reach stopped the retention sweep."""
    path = f"/api/projects/{server.ids['project_id']}"
    _refused(_api(server, "PUT", path, {"name": "fuzz", field: value}), field)
    _refused(_api(server, "POST", "/api/projects", {"name": "p", field: value}), field)


@pytest.mark.parametrize("until", ["0.5", "1700000000", "2025-01-01", "2025-01-01T00:00:00"])
def test_runs_since_and_until_take_only_rfc_3339_date_times(server: Server, until: str) -> None:
    _refused(_api(server, "GET", f"/api/runs?until={until}"), "until")
    _refused(_api(server, "GET", f"/api/runs?since={until}"), "since")
    order = server.ids["work_order_id"]
    window = "since=2025-01-01T00:00:00Z&until=2099-01-01T00:00:00%2B02:00"
    path = f"/api/runs?work_order_id={order}&{window}"
    taken = _api(server, "GET", path)
    assert taken.status_code == 200, taken.text
    assert [run["id"] for run in taken.json()["items"]] == [server.ids["run_id"]]


def test_the_schema_says_what_is_allowed(server: Server) -> None:
    document = _api(server, "GET", "/openapi.json").json()
    schemas = document["components"]["schemas"]
    project = schemas["ProjectIn"]["properties"]
    assert project["history_retention_period"]["anyOf"][0]["maximum"] == MAX_RETENTION_DAYS
    assert project["concurrency"]["anyOf"][0]["maximum"] == 2**31 - 1
    assert project["id"]["minLength"] == 1
    kinds = {kind["type"]: kind for kind in schemas["JsonValue"]["anyOf"]}
    number = kinds["number"]
    assert kinds["string"]["pattern"] == kinds["object"]["propertyNames"]["pattern"]
    assert (number["minimum"], number["exclusiveMaximum"]) == (-(2**63), 2**63)
    assert schemas["CredentialIn"]["properties"]["body"]["additionalProperties"] == {
        "$ref": "#/components/schemas/JsonValue"
    }
    runs = document["paths"]["/api/runs"]["get"]
    until = next(p for p in runs["parameters"] if p["name"] == "until")
    assert until["schema"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    assert {"400", "401", "404", "409", "413", "422"} <= set(runs["responses"])


@pytest.mark.parametrize("state", ["success", " , failed , crashed ,", ""])
def test_runs_take_states_as_the_schema_says(server: Server, state: str) -> None:
    taken = _api(server, "GET", "/api/runs", params={"state": state})
    assert taken.status_code == 200, taken.text


@pytest.mark.parametrize("state", ["done", "success failed", "success\t", ",", "  "])
def test_runs_refuse_what_is_not_a_state(server: Server, state: str) -> None:
    _refused(_api(server, "GET", "/api/runs", params={"state": state}), "state")


@pytest.mark.parametrize("jobs", [[], None])
def test_a_workflow_without_jobs_is_refused_by_its_schema(server: Server, jobs: object) -> None:
    document: dict[str, object] = {"name": "w"} if jobs is None else {"name": "w", "jobs": jobs}
    path = f"/api/projects/{server.ids['project_id']}/workflows"
    _refused(_api(server, "POST", path, document), "jobs")
    _refused(_api(server, "PUT", f"/api/workflows/{server.ids['workflow_id']}", document), "jobs")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"auth_type": "api", "username": "u"}, "username"),
        ({"auth_type": "api", "api_key": "short"}, "api_key"),
        ({"auth_type": "basic", "username": "a:b", "password": "p" * 8}, "username"),
        ({"auth_type": "basic", "username": "u", "password": "p" * 73}, "password"),
        (
            {"auth_type": "basic", "username": "u", "password": "p" * 8, "api_key": "k" * 16},
            "api_key",
        ),
    ],
)
def test_a_webhook_auth_method_is_what_its_auth_type_schema_says(
    server: Server, document: dict[str, object], field: str
) -> None:
    """Which fields go with which ``auth_type`` was the store's rule only (a 422 the schema
    did not announce); it is the schema's now."""
    path = f"/api/projects/{server.ids['project_id']}/webhook_auth_methods"
    _refused(_api(server, "POST", path, {"name": "m", **document}), field)


# -- the bounded run (last: it may delete what the tests above use) ---------------------------


def test_no_input_gets_a_server_error(server: Server) -> None:
    """Each operation, with requests its schema allows and requests it forbids."""
    api = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    failures: list[str] = []
    sent: list[int] = []
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself is sound
        operations.append(result.ok())
    assert len(operations) > 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _exercise(operation, mode, server, sent)
            except Unsatisfiable:
                continue  # nothing to send that its schema forbids (no parameters, no body)
            except (Exception, FailureGroup) as error:  # all are listed, then the test fails
                failures.append(f"{operation.label} ({mode.value}): {error}")
    assert not failures, "\n\n".join(failures) + f"\n\nserver log:\n{server.errors()}"
    assert len(sent) >= MIN_CASES


Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def _exercise(operation: Operation, mode: GenerationMode, server: Server, sent: list[int]) -> None:
    names = {parameter.name for parameter in operation.path_parameters}
    seeded = {name: server.ids[name] for name in names if name in server.ids}
    cases = operation.as_strategy(mode)
    if seeded and mode is GenerationMode.POSITIVE:
        cases = operation.as_strategy(mode, path_parameters=seeded) | cases

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def exercise(case: Any) -> None:
        sent.append(1)
        case.call_and_validate(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {server.token}"},
            checks=API_CHECKS if operation.path.startswith("/api/") else CHECKS,
            timeout=30,
        )

    exercise()
