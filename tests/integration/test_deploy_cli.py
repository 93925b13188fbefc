"""``fulmen deploy`` and ``fulmen pull`` against a real coordinator on loopback: what they
print, what they change through the REST API, and what they refuse."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen.cli import deploy as deploy_command
from fulmen.store import SQLStore
from fulmen_testing.coordinator import api_token, serve, sqlite_store
from fulmen_testing.npm_registry import closed_url, npm_registry
from fulmen_testing.python_index import python_index

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Coordinator:
    url: str
    token: str
    store: SQLStore

    async def fulmen(self, *args: str, input: str | None = None) -> Result:
        """The command, in a thread (its HTTP client blocks; the server runs on this loop)."""
        env = {"FULMEN_URL": self.url, "FULMEN_API_TOKEN": self.token}
        runner = CliRunner()
        return await anyio.to_thread.run_sync(
            lambda: runner.invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
        )

    async def get(self, path: str) -> object:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx2.AsyncClient(base_url=self.url, headers=headers) as http:
            response = await http.get(path)
            response.raise_for_status()
            return response.json()


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[Coordinator]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        yield Coordinator(served.base_url, await api_token(store), store)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, free to edit."""
    folder = tmp_path / "project"
    shutil.copytree(EXAMPLES, folder)
    return folder / "project.yaml"


async def test_deploy_creates_then_reports_nothing_changed(
    coordinator: Coordinator, project: Path
) -> None:
    first = await coordinator.fulmen("deploy", str(project))
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith("project examples: created (")
    project_id = lines[0].split("(")[1].rstrip(")")
    listed: Any = await coordinator.get(f"/api/projects/{project_id}/workflows")
    hook = next(t for t in listed["items"][0]["triggers"] if t["type"] == "webhook")
    assert lines[1:] == [  # where to send requests, printed for each new webhook
        "workflow count-and-report: created",
        f"  webhook: {coordinator.url}/i/{hook['id']}",
    ]

    again = await coordinator.fulmen("deploy", str(project))
    assert again.output.splitlines()[1:] == ["workflow count-and-report: unchanged"]
    assert "unchanged" in again.output.splitlines()[0]
    projects = await coordinator.get("/api/projects")
    assert [p["name"] for p in projects["items"]] == ["examples"]  # type: ignore[index]


async def test_an_edited_file_updates_the_workflow_and_keeps_its_webhook(
    coordinator: Coordinator, project: Path
) -> None:
    await coordinator.fulmen("deploy", str(project))
    project_id = (await coordinator.get("/api/projects"))["items"][0]["id"]  # type: ignore[index]
    path = f"/api/projects/{project_id}/workflows"
    before = (await coordinator.get(path))["items"][0]  # type: ignore[index]

    (project.parent / "report.py").write_text("fn(lambda state: state)\n")
    text = project.read_text().replace("      - {from: cron, to: count}\n", "")
    project.write_text(text + "  second:\n    jobs: [{name: only, body: 'fn(lambda s: s)'}]\n")
    done = await coordinator.fulmen("deploy", str(project))
    assert done.output.splitlines()[1:] == [
        "workflow count-and-report: updated (version 2)",
        "workflow second: created",
    ]
    after = {w["name"]: w for w in (await coordinator.get(path))["items"]}  # type: ignore[index]
    updated = after["count-and-report"]
    assert updated["triggers"][0]["id"] == before["triggers"][0]["id"]  # the webhook URL stays
    assert [j["id"] for j in updated["jobs"]] == [j["id"] for j in before["jobs"]]
    assert len(updated["edges"]) == len(before["edges"]) - 1
    assert updated["jobs"][2]["body"] == "fn(lambda state: state)\n"

    project.write_text(text)
    kept = await coordinator.fulmen("deploy", str(project))
    assert "workflow second: not in the file (kept; --prune deletes it)" in kept.output
    pruned = await coordinator.fulmen("deploy", "--prune", str(project))
    assert "workflow second: deleted (not in the file)" in pruned.output
    assert len((await coordinator.get(path))["items"]) == 1  # type: ignore[index]


async def test_pull_writes_what_deploy_reads_back_unchanged(
    coordinator: Coordinator, project: Path, tmp_path: Path
) -> None:
    text = project.read_text().replace("name: examples\n", "name: examples\ncredentials: [api]\n")
    project.write_text(
        text.replace("      - name: report\n", "      - name: report\n        credential: api\n")
    )
    deployed = await coordinator.fulmen("deploy", str(project))
    assert (
        "credential api: created empty; set its value with `fulmen credentials set examples api`"
        in deployed.output
    )

    pulled = tmp_path / "pulled" / "project.yaml"
    done = await coordinator.fulmen("pull", str(pulled), "--project", "examples")
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"wrote {pulled}")
    for job in ("count", "check", "report"):
        assert (pulled.parent / f"{job}.py").read_text() == (
            project.parent / f"{job}.py"
        ).read_text()
    assert (pulled.parent / "handle-failure.py").exists()
    written = pulled.read_text()
    assert "credentials:\n  - api\n" in written
    assert "credential: api" in written
    assert "id: " in written

    again = await coordinator.fulmen("deploy", str(pulled))
    assert again.output.splitlines()[-1] == "workflow count-and-report: unchanged"

    over = await coordinator.fulmen("pull", str(project))  # the file names its project
    assert over.exit_code == 0, over.output
    assert "body_file: handle_failure.py" in project.read_text()  # its own file names kept


async def test_an_invalid_file_changes_nothing_and_names_each_key(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: broken\nworkflows:\n  sync:\n    jobs:\n"
        "      - {name: a, body: x}\n"
        "      - {name: b, adaptor: '@openfn/language-dhis2@5', language: python, body: x}\n"
        "    edges: [{from: a, to: c}]\n"
    )
    done = await coordinator.fulmen("deploy", str(bad))
    assert done.exit_code == 2
    assert done.output.splitlines() == [
        f"fulmen deploy: {bad}: workflows.sync.jobs[1].adaptor: unknown adaptor "
        "'@openfn/language-dhis2@5': of Lightning's adaptors a Python job can use common, "
        "http and collections (@openfn/language-common, @openfn/language-http, "
        "@openfn/language-collections); for the others make it a JavaScript job",
        f"fulmen deploy: {bad}: workflows.sync.edges[0].to: no job is named 'c'",
    ]
    assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_wrong_token_or_no_coordinator_is_one_line(
    coordinator: Coordinator, project: Path
) -> None:
    wrong = Coordinator(coordinator.url, "fmn_nobody_secret", coordinator.store)
    refused = await wrong.fulmen("deploy", str(project))
    assert refused.exit_code == 1
    assert refused.output == "fulmen deploy: the API token is not valid\n"
    gone = Coordinator("http://127.0.0.1:9", coordinator.token, coordinator.store)
    unreachable = await gone.fulmen("deploy", str(project))
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("fulmen deploy: cannot reach the coordinator at")


# -- JavaScript jobs (issue 15) ----------------------------------------------------------------

JAVASCRIPT_PROJECT = """
name: openfn
workflows:
  sync:
    triggers: [{type: webhook}]
    jobs:
      - {name: fetch, adaptor: "@openfn/language-http@^6", body: "get('/patients');"}
      - {name: count, adaptor: common, language: javascript, body_file: count.js}
      - {name: report, adaptor: "@openfn/language-common@latest", body: "fn(s => s);"}
      - {name: legacy, adaptor: "@openfn/language-common@2.1.1", language: python,
         body: "fn(lambda s: s)"}
    edges:
      - {from: webhook, to: fetch}
      - {from: fetch, to: count}
      - {from: count, to: report, condition: "state.data.count > 2 && !state.errors"}
      - {from: report, to: legacy}
"""
COUNT_JS = "fn(state => {\n  state.data.count = state.data.items.length;\n  return state;\n});\n"


@asynccontextmanager
async def coordinator_with(tmp_path: Path, registry: str) -> AsyncIterator[Coordinator]:
    """A coordinator whose JavaScript adaptors resolve against ``registry``."""
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, npm_registry=registry) as served,
    ):
        yield Coordinator(served.base_url, await api_token(store), store)


def javascript_project(tmp_path: Path, text: str = JAVASCRIPT_PROJECT) -> Path:
    folder = tmp_path / "openfn"
    folder.mkdir(exist_ok=True)
    (folder / "count.js").write_text(COUNT_JS)
    (folder / "project.yaml").write_text(text)
    return folder / "project.yaml"


async def test_deploy_resolves_javascript_adaptors_and_a_second_deploy_changes_nothing(
    tmp_path: Path,
) -> None:
    file = javascript_project(tmp_path)
    with npm_registry() as registry:
        async with coordinator_with(tmp_path, registry.url) as coordinator:
            done = await coordinator.fulmen("deploy", str(file))
            assert done.exit_code == 0, done.output
            project = (await coordinator.get("/api/projects"))["items"][0]  # type: ignore[index]
            path = f"/api/projects/{project['id']}/workflows"
            [workflow] = (await coordinator.get(path))["items"]  # type: ignore[index]
            assert done.output.splitlines()[1:] == ["workflow sync: created"] + [
                f"  webhook: {coordinator.url}/i/{t['id']}"
                for t in workflow["triggers"]
                if t["type"] == "webhook"
            ]
            assert [(j["name"], j["adaptor"], j["language"]) for j in workflow["jobs"]] == [
                ("fetch", "@openfn/language-http@6.5.1", "javascript"),  # a range
                ("count", "@openfn/language-common@3.3.4", "javascript"),  # a short name
                ("report", "@openfn/language-common@3.3.4", "javascript"),  # @latest
                ("legacy", "@openfn/language-common@2.1.1", "python"),  # as written
            ]
            again = await coordinator.fulmen("deploy", str(file))
            assert again.output.splitlines()[1:] == ["workflow sync: unchanged"]

            pulled = tmp_path / "pulled" / "project.yaml"
            assert (
                await coordinator.fulmen("pull", str(pulled), "--project", "openfn")
            ).exit_code == 0
            written = yaml.safe_load(pulled.read_text())["workflows"]["sync"]["jobs"]
            assert [job.get("language") for job in written] == [None, None, None, "python"]
            assert (pulled.parent / "count.js").read_text() == COUNT_JS
            back = await coordinator.fulmen("deploy", str(pulled))
            assert back.output.splitlines()[-1] == "workflow sync: unchanged"


@pytest.mark.parametrize(
    ("adaptor", "says"),
    [
        ("@openfn/language-nope@latest", "has no package @openfn/language-nope"),
        ("@openfn/language-common@^9", "has no version in the range '^9' (its latest is 3.3.4)"),
    ],
)
async def test_an_adaptor_that_does_not_exist_deploys_nothing(
    tmp_path: Path, adaptor: str, says: str
) -> None:
    text = JAVASCRIPT_PROJECT.replace("@openfn/language-common@latest", adaptor)
    file = javascript_project(tmp_path, text)
    with npm_registry() as registry:
        async with coordinator_with(tmp_path, registry.url) as coordinator:
            done = await coordinator.fulmen("deploy", str(file))
            assert done.exit_code == 1
            assert done.output.startswith("fulmen deploy: ") and says in done.output
            assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_registry_that_cannot_be_reached_deploys_nothing(tmp_path: Path) -> None:
    down = closed_url()
    async with coordinator_with(tmp_path, down) as coordinator:
        done = await coordinator.fulmen("deploy", str(javascript_project(tmp_path)))
        assert done.exit_code == 1
        assert done.output == (
            f"fulmen deploy: the npm registry {down} could not be reached about "
            "@openfn/language-http: ConnectError: All connection attempts failed\n"
        )
        assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_javascript_syntax_error_is_named_by_file_and_line(tmp_path: Path) -> None:
    file = javascript_project(tmp_path)
    (file.parent / "count.js").write_text("fn(state => {\n  state.data.count = ;\n});\n")
    broken = file.read_text().replace("state.data.count > 2 && !state.errors", "state.data >")
    file.write_text(broken)
    async with coordinator_with(tmp_path, closed_url()) as coordinator:
        done = await coordinator.fulmen("deploy", str(file))
    assert done.exit_code == 2
    assert done.output.splitlines() == [
        f"fulmen deploy: {file}: workflows.sync.jobs[1].body_file: count.js: SyntaxError at "
        "line 2, column 20: unexpected '='",
        f"fulmen deploy: {file}: workflows.sync.edges[2].condition: always, on_job_success, "
        "on_job_failure or a JavaScript expression; SyntaxError at line 1, column 13: "
        "unexpected end of the source: '>' needs something after it",
    ]


# -- all or nothing on the server (issue 21) ---------------------------------------------------

TWO_WORKFLOWS = """
name: pair
workflows:
  first:
    jobs:
      - {name: count, adaptor: common, language: javascript, body: "fn(s => s);"}
  second:
    triggers: [{type: webhook}]
    jobs:
      - {name: fetch, adaptor: "@openfn/language-http@^6", body: "get('/patients');"}
    edges:
      - {from: webhook, to: fetch}
"""


def between_questions_and_deployment(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]
) -> None:
    """Run ``meanwhile`` after ``fulmen deploy`` has read the project and asked its
    questions, just before it sends the deployment: what another user or the registry
    could do in that moment."""
    asked = deploy_command._resolve_packages

    def then(*args: Any, **kwargs: Any) -> Any:
        answer = asked(*args, **kwargs)
        meanwhile()
        return answer

    monkeypatch.setattr(deploy_command, "_resolve_packages", then)


async def test_a_second_workflow_refused_on_the_server_makes_no_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry drops the second workflow's adaptor after deploy asked about it: the
    server refuses that workflow, and the project and the first workflow are not made."""
    file = javascript_project(tmp_path, TWO_WORKFLOWS)
    with npm_registry() as registry:
        async with coordinator_with(tmp_path, registry.url) as coordinator:
            between_questions_and_deployment(
                monkeypatch, lambda: registry.packuments.pop("@openfn/language-http")
            )
            done = await coordinator.fulmen("deploy", str(file))
            assert done.exit_code == 1
            [line] = done.output.splitlines()
            assert line.startswith("fulmen deploy: workflow 'second': job 'fetch' (")
            assert line.endswith(
                f"): the npm registry {registry.url} has no package @openfn/language-http "
                "(workflows[1])"
            )
            assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_workflow_saved_meanwhile_changes_nothing(
    coordinator: Coordinator, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone saves the second workflow after deploy read it: the deploy changes nothing
    at all (not the first workflow, not the new credential) and says which was saved."""
    text = project.read_text()
    project.write_text(text + "  second:\n    jobs: [{name: only, body: 'fn(lambda s: s)'}]\n")
    assert (await coordinator.fulmen("deploy", str(project))).exit_code == 0
    project_id = (await coordinator.get("/api/projects"))["items"][0]["id"]  # type: ignore[index]
    path = f"/api/projects/{project_id}/workflows"
    before = {w["name"]: w for w in (await coordinator.get(path))["items"]}  # type: ignore[index]
    second = before["second"]

    def save_second() -> None:
        body = {k: second[k] for k in ("name", "jobs", "triggers", "edges")}
        body["jobs"][0]["body"] = "fn(lambda s: {**s, 'theirs': True})"
        headers = {"Authorization": f"Bearer {coordinator.token}"}
        saved = httpx2.put(
            f"{coordinator.url}/api/workflows/{second['id']}", json=body, headers=headers
        )
        assert saved.status_code == 200, saved.text

    (project.parent / "report.py").write_text("fn(lambda state: state)\n")
    project.write_text(
        text.replace("name: examples\n", "name: examples\ncredentials: [api]\n")
        + "  second:\n    jobs: [{name: only, body: 'fn(lambda s: {**s, \"mine\": 1})'}]\n"
    )
    between_questions_and_deployment(monkeypatch, save_second)
    done = await coordinator.fulmen("deploy", str(project))
    assert done.exit_code == 1
    assert done.output == (
        f"fulmen deploy: workflow 'second': workflow {second['id']} was saved by someone else: "
        "it is at version 2, this save was based on version 1 (workflows[1].expected_version)\n"
    )
    after = {w["name"]: w for w in (await coordinator.get(path))["items"]}  # type: ignore[index]
    assert after["count-and-report"] == before["count-and-report"]
    assert after["second"]["jobs"][0]["body"] == "fn(lambda s: {**s, 'theirs': True})"
    credentials = await coordinator.get(f"/api/projects/{project_id}/credentials")
    assert credentials["items"] == []  # type: ignore[index]


# -- Python jobs' packages (issue 16) ----------------------------------------------------------

PYTHON_PROJECT = """
name: pinned
workflows:
  sync:
    jobs:
      - name: fetch
        adaptor: fulmen-probe@latest
        requirements: [fulmen-adaptor-demo>=0.1]
        body: "fn(lambda s: s)"
      - {name: report, body: "fn(lambda s: s)"}
    edges:
      - {from: fetch, to: report}
"""


@asynccontextmanager
async def coordinator_on(tmp_path: Path, index: str) -> AsyncIterator[Coordinator]:
    """A coordinator whose Python packages resolve against the package ``index``."""
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, python_index=index, data_dir=str(tmp_path / "data")) as served,
    ):
        yield Coordinator(served.base_url, await api_token(store), store)


def python_project(tmp_path: Path, text: str = PYTHON_PROJECT) -> Path:
    folder = tmp_path / "pinned"
    folder.mkdir(exist_ok=True)
    (folder / "project.yaml").write_text(text)
    return folder / "project.yaml"


async def test_deploy_pins_python_packages_and_pull_writes_the_pins_back(tmp_path: Path) -> None:
    file = python_project(tmp_path)
    with python_index() as index:
        async with coordinator_on(tmp_path, index.url) as coordinator:
            done = await coordinator.fulmen("deploy", str(file))
            assert done.exit_code == 0, done.output
            project = (await coordinator.get("/api/projects"))["items"][0]  # type: ignore[index]
            path = f"/api/projects/{project['id']}/workflows"
            [workflow] = (await coordinator.get(path))["items"]  # type: ignore[index]
            assert done.output.splitlines()[1:] == ["workflow sync: created"] + [
                f"  webhook: {coordinator.url}/i/{t['id']}"
                for t in workflow["triggers"]
                if t["type"] == "webhook"
            ]
            assert [(j["name"], j["adaptor"], j["requirements"]) for j in workflow["jobs"]] == [
                ("fetch", "fulmen-probe@2.0.0", ["fulmen-adaptor-demo==0.1.0"]),
                ("report", "common", []),
            ]
            again = await coordinator.fulmen("deploy", str(file))
            assert again.output.splitlines()[1:] == ["workflow sync: unchanged"]

            pulled = tmp_path / "pulled" / "project.yaml"
            assert (
                await coordinator.fulmen("pull", str(pulled), "--project", "pinned")
            ).exit_code == 0
            [fetch, report] = yaml.safe_load(pulled.read_text())["workflows"]["sync"]["jobs"]
            assert (fetch["adaptor"], fetch["requirements"]) == (
                "fulmen-probe@2.0.0",
                ["fulmen-adaptor-demo==0.1.0"],
            )
            assert "requirements" not in report
            back = await coordinator.fulmen("deploy", str(pulled))
            assert back.output.splitlines()[-1] == "workflow sync: unchanged"
            version = workflow["version"]
        # the pins are deployed already: with the index gone, the pulled file still deploys
        async with coordinator_on(tmp_path, closed_url()) as coordinator:
            unchanged = await coordinator.fulmen("deploy", str(pulled))
            assert unchanged.exit_code == 0, unchanged.output
            assert unchanged.output.splitlines()[-1] == "workflow sync: unchanged"
            [same] = (await coordinator.get(path))["items"]  # type: ignore[index]
            assert same["version"] == version


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ("fulmen-probe@latest", "fulmen-probe@9.9"),
            "fulmen deploy: workflows.sync: job fetch: fulmen-probe@9.9 cannot be installed "
            "from the Python package index {index}: Because there is no version of "
            "fulmen-probe==9.9",
        ),
        (
            ("fulmen-adaptor-demo>=0.1", "fulmen-nowhere"),
            "fulmen deploy: workflows.sync: job fetch: fulmen-nowhere cannot be installed "
            "from the Python package index {index}: Because fulmen-nowhere was not found",
        ),
    ],
)
async def test_a_python_package_the_index_does_not_have_deploys_nothing(
    tmp_path: Path, change: tuple[str, str], says: str
) -> None:
    file = python_project(tmp_path, PYTHON_PROJECT.replace(*change))
    with python_index() as index:
        async with coordinator_on(tmp_path, index.url) as coordinator:
            done = await coordinator.fulmen("deploy", str(file))
            assert done.exit_code == 1
            assert done.output.startswith(says.format(index=index.url)), done.output
            assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_python_index_that_cannot_be_reached_deploys_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's own setting: refused at once, not in 7 s
    down = closed_url().rstrip("/") + "/simple"
    async with coordinator_on(tmp_path, down) as coordinator:
        done = await coordinator.fulmen("deploy", str(python_project(tmp_path)))
        assert done.exit_code == 1
        assert done.output.startswith(
            f"fulmen deploy: workflows.sync: the Python package index {down} could not be reached: "
        )
        assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_credential_is_set_listed_and_deleted_by_name(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    """``fulmen credentials`` (issue 21): the value from a file or standard input, never an
    argument; refusals are one line; the value is never printed back."""
    await coordinator.fulmen("deploy", str(EXAMPLES / "project.yaml"))
    value = tmp_path / "api.json"
    value.write_text('{"base_url": "https://example.org", "token": "s3cret"}')
    made = await coordinator.fulmen(
        "credentials", "set", "examples", "api", "--from-file", str(value)
    )
    assert made.exit_code == 0, made.output
    (credential_id,) = made.output.split("(")[1].split(")")[:1]
    assert made.output == f"credential api ({credential_id}): created\n"
    body = await coordinator.store.get_credential_body(credential_id)
    assert body == {"base_url": "https://example.org", "token": "s3cret"}

    again = await coordinator.fulmen(
        "credentials", "set", "examples", "api", input='{"token": "n3w"}'
    )  # standard input, not a terminal
    assert again.output == f"credential api ({credential_id}): value replaced\n"
    assert await coordinator.store.get_credential_body(credential_id) == {"token": "n3w"}

    listed = await coordinator.fulmen("credentials", "list", "examples")
    header, line = listed.output.splitlines()
    assert header == "NAME\tID\tUPDATED" and line.startswith(f"api\t{credential_id}\t")
    assert "n3w" not in listed.output

    for text, said in [
        ("{nope", "fulmen credentials set: the value from stdin is not JSON: Expecting "),
        ("[1]", "fulmen credentials set: the value from stdin must be a JSON object, like "),
    ]:
        refused = await coordinator.fulmen("credentials", "set", "examples", "api", input=text)
        assert refused.exit_code == 2 and refused.output.startswith(said)
        assert len(refused.output.splitlines()) == 1
    nowhere = await coordinator.fulmen("credentials", "list", "nope")
    assert nowhere.exit_code == 2
    assert (
        nowhere.output
        == "fulmen credentials list: no project is named 'nope' (projects: examples)\n"
    )

    gone = await coordinator.fulmen("credentials", "delete", "examples", "api")
    assert gone.output == f"credential api ({credential_id}): deleted\n"
    assert (await coordinator.fulmen("credentials", "list", "examples")).output == (
        "NAME\tID\tUPDATED\n"
    )


HAND_WRITTEN = """\
# Our sync, written by hand.
name: layout
workflows:
  sync:
    triggers:
      - {type: webhook}   # the partner posts here
    jobs:
      - name: fetch
        adaptor: common       # said on purpose
        body: |
          # take what came
          fn(lambda s: {**s, "data": {"n": 1}})
      - name: store
        body: 'fn(lambda s: s)'
    edges:
      - {from: webhook, to: fetch}
      - {from: fetch, to: store}
"""


async def test_pull_keeps_a_hand_written_files_layout(
    coordinator: Coordinator, tmp_path: Path
) -> None:
    """Issue 21: a pull rewrote the file (inline ``body: |`` blocks quoted or moved to new
    files, comments gone). Now only what changed on the server changes."""
    project = tmp_path / "layout" / "project.yaml"
    project.parent.mkdir()
    project.write_text(HAND_WRITTEN)
    assert (await coordinator.fulmen("deploy", str(project))).exit_code == 0

    same = await coordinator.fulmen("pull", str(project))
    assert same.exit_code == 0, same.output
    text = project.read_text()
    assert text.startswith("# Our sync, written by hand.\nname: layout\nid: ")  # id added
    assert text.split("\n", 3)[3] == HAND_WRITTEN.split("\n", 2)[2]  # the rest as written
    assert sorted(p.name for p in project.parent.iterdir()) == ["project.yaml"]  # no new files

    # the store job's body changed on the server: that line, and nothing else, changes
    workflows: Any = await coordinator.get(
        f"/api/projects/{text.split('id: ')[1].split()[0]}/workflows"
    )
    workflow = workflows["items"][0]
    for job in workflow["jobs"]:
        if job["name"] == "fetch":
            job["body"] = '# take what came\nfn(lambda s: {**s, "data": {"n": 2}})\n'
    async with httpx2.AsyncClient(base_url=coordinator.url) as http:
        saved = await http.put(
            f"/api/workflows/{workflow['id']}",
            json={k: workflow[k] for k in ("name", "jobs", "triggers", "edges")},
            params={"expected_version": workflow["version"]},
            headers={"Authorization": f"Bearer {coordinator.token}"},
        )
        assert saved.status_code == 200, saved.text
    assert (await coordinator.fulmen("pull", str(project))).exit_code == 0
    changed = project.read_text()
    assert changed == text.replace('"data": {"n": 1}', '"data": {"n": 2}')
