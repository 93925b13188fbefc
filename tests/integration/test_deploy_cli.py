"""``fulmen deploy`` and ``fulmen pull`` against a real coordinator on loopback: what they
print, what they change through the REST API, and what they refuse."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen_testing.coordinator import api_token, serve, sqlite_store

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Coordinator:
    url: str
    token: str

    async def fulmen(self, *args: str) -> Result:
        """The command, in a thread (its HTTP client blocks; the server runs on this loop)."""
        env = {"FULMEN_URL": self.url, "FULMEN_API_TOKEN": self.token}
        runner = CliRunner()
        return await anyio.to_thread.run_sync(
            lambda: runner.invoke(cli, list(args), env=env, catch_exceptions=False)
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
        yield Coordinator(served.base_url, await api_token(store))


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
    assert lines[1:] == ["workflow count-and-report: created"]

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
    assert "credential api: created empty; set its value with PUT /api/projects/" in deployed.output

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
        "      - {name: b, adaptor: '@openfn/language-dhis2@5', body: x}\n"
        "    edges: [{from: a, to: c}]\n"
    )
    done = await coordinator.fulmen("deploy", str(bad))
    assert done.exit_code == 2
    assert done.output.splitlines() == [
        f"fulmen deploy: {bad}: workflows.sync.jobs[1].adaptor: unknown adaptor "
        "'@openfn/language-dhis2@5': of Lightning's adaptors Fulmen ships common and http "
        "(@openfn/language-common, @openfn/language-http)",
        f"fulmen deploy: {bad}: workflows.sync.edges[0].to: no job is named 'c'",
    ]
    assert (await coordinator.get("/api/projects"))["items"] == []  # type: ignore[index]


async def test_a_wrong_token_or_no_coordinator_is_one_line(
    coordinator: Coordinator, project: Path
) -> None:
    wrong = Coordinator(coordinator.url, "fmn_nobody_secret")
    refused = await wrong.fulmen("deploy", str(project))
    assert refused.exit_code == 1
    assert refused.output == "fulmen deploy: the API token is not valid\n"
    gone = Coordinator("http://127.0.0.1:9", coordinator.token)
    unreachable = await gone.fulmen("deploy", str(project))
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("fulmen deploy: cannot reach the coordinator at")
