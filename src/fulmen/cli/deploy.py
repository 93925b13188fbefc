"""``fulmen deploy`` and ``fulmen pull``: a project file to a coordinator and back, through
its REST API (fulmen.project says how things are matched; cli/client.py talks HTTP).

``deploy`` reads and checks the whole file first (an invalid file changes nothing and exits 2
with one ``path: message`` line per problem), asks the coordinator what the JavaScript jobs'
adaptors and each workflow's Python packages resolve to (a package or version that does not
exist, pins no version meets together, or an npm registry or Python package index the
coordinator cannot reach, changes nothing either and exits 1), then sends the whole project
in one request (``POST /api/deployments``, coordinator/api/deployments.py): the project, its
credentials (names only: a new one is created empty, its value set with ``fulmen credentials
set``), each workflow (at the version read), and with ``--prune`` the deployed workflows the
file does not name (else kept, and said so). The coordinator writes all of it in one
transaction, or, refusing any part (a workflow saved meanwhile, say), nothing, and names the
part (exit 1). What it did is printed one line per thing: ``created``, ``updated`` or
``unchanged``, and the URL of each webhook the deploy made.

``pull`` writes the deployed project back to the file, with its job files beside it; over a
file that reads cleanly it keeps that file's layout (comments, order, inline bodies) and
changes only what differs (project/layout.py).

The API's address and token: ``--url`` / ``FULMEN_URL`` (``http://127.0.0.1:4000``), and
``FULMEN_API_TOKEN``, or the file ``--token-file`` / ``FULMEN_API_TOKEN_FILE``, by default the
one ``fulmen up`` writes (``./.fulmen/api-token``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import click
import yaml

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import (
    Api,
    connect,
    token_file_option,
    url_option,
)
from fulmen.errors import ApiError, ProjectFileError
from fulmen.project import (
    Pins,
    ProjectSpec,
    WorkflowSpec,
    desired_workflow,
    javascript_adaptors,
    load,
    packages_request,
    render,
    spec_of_workflow,
)
from fulmen.project.layout import keep_layout

__all__ = ["Deployed", "deploy", "deploy_project", "pull", "pull_project"]

#: Adaptors asked about in one request (the API takes up to 100).
_ASKED_AT_ONCE = 50


@dataclass
class Deployed:
    """What a deploy did: the project's id, and one line per thing it looked at."""

    project_id: str
    changes: list[str] = field(default_factory=list)


def deploy_project(api: Api, spec: ProjectSpec, *, prune: bool = False) -> Deployed:
    """Make the project on the coordinator what ``spec`` says, in one request (``POST
    /api/deployments``): written whole, or (refused: ApiError) not at all."""
    found = _find_project(api, spec.id or spec.name)
    deployed: dict[str, dict[str, Any]] = {}
    credentials: dict[str, str] = {}
    keychains: dict[str, str] = {}
    if found is not None:
        for document in api.pages(f"/api/projects/{found['id']}/workflows"):
            deployed.setdefault(document["name"], document)
        path = f"/api/projects/{found['id']}/credentials"
        credentials = {item["name"]: item["id"] for item in api.pages(path)}
        path = f"/api/projects/{found['id']}/keychains"
        keychains = {item["name"]: item["id"] for item in api.pages(path)}
    _check_keychains(spec, keychains)
    # Asked before the deployment, so that a package that cannot be had is named by the
    # workflow, and each document is sent as the coordinator would save it.
    adaptors = _resolve_adaptors(api, spec)
    packages = _resolve_packages(api, spec, deployed)
    ids = {name: credentials.get(name) or str(uuid4()) for name in spec.credentials}
    workflows = []
    for workflow in spec.workflows:
        existing = deployed.pop(workflow.name, None)
        document = desired_workflow(
            workflow,
            existing,
            ids,
            adaptors=adaptors,
            packages=packages.get(workflow.name),
            keychains=keychains,
        )
        if existing is not None:
            document["expected_version"] = existing["version"]
        workflows.append(document)
    key = found["id"] if found is not None else spec.id
    project = {"name": spec.name, "concurrency": spec.concurrency}
    answer = api.call(
        "POST",
        "/api/deployments",
        json={
            "project": {**project, "id": key} if key else project,
            "credentials": [{"name": name, "id": ids[name]} for name in spec.credentials],
            "workflows": workflows,
            "deletions": [left["id"] for left in deployed.values()] if prune else [],
        },
    )
    done = _report(api, spec, answer)
    if not prune:
        done.changes += [
            f"workflow {name}: not in the file (kept; --prune deletes it)" for name in deployed
        ]
    return done


def _check_keychains(spec: ProjectSpec, keychains: dict[str, str]) -> None:
    """A keychain is made on the coordinator, not in the file: each one a job names must
    exist in the project already (ApiError naming the first that does not)."""
    for workflow in spec.workflows:
        for job in workflow.jobs:
            if job.keychain and job.keychain not in keychains:
                raise ApiError(
                    f"workflow {workflow.name}, job {job.name}: project {spec.name} has no "
                    f"keychain {job.keychain!r}; make it first with `fulmen keychains set "
                    f"{shlex.quote(spec.name)} {shlex.quote(job.keychain)} --path …`",
                    code="unknown_keychain",
                )


def _report(api: Api, spec: ProjectSpec, answer: dict[str, Any]) -> Deployed:
    """A line per thing the deployment did, and the URL of each webhook it made: where to
    send requests."""
    project = answer["project"]
    done = Deployed(project["id"], [f"project {spec.name}: {project['change']} ({project['id']})"])
    done.changes += [
        f"credential {credential['name']}: created empty; set its value with "
        f"`fulmen credentials set {shlex.quote(spec.name)} {shlex.quote(credential['name'])}`"
        for credential in answer["credentials"]
        if credential["change"] == "created"
    ]
    for workflow in answer["workflows"]:
        change = workflow["change"]
        said = {
            "updated": f"updated (version {workflow['version']})",
            "deleted": "deleted (not in the file)",
        }.get(change, change)
        done.changes.append(f"workflow {workflow['name']}: {said}")
        done.changes += [f"  webhook: {api.url}/i/{trigger}" for trigger in workflow["webhooks"]]
    return done


def _resolve_adaptors(api: Api, spec: ProjectSpec) -> dict[str, str]:
    """The exact adaptor each JavaScript job's adaptor means now, as the coordinator would
    save it (ApiError when one does not exist or the registry cannot be asked)."""
    wanted = javascript_adaptors(spec.workflows)
    exact: dict[str, str] = {}
    for start in range(0, len(wanted), _ASKED_AT_ONCE):
        asked = wanted[start : start + _ASKED_AT_ONCE]
        answer = api.call("GET", "/api/adaptors/resolved", params={"adaptor": asked})
        exact.update((item["adaptor"], item["resolved"]) for item in answer["items"])
    return exact


def _resolve_packages(
    api: Api, spec: ProjectSpec, deployed: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Pins]]:
    """Each workflow's Python packages as the coordinator would save them now, by workflow
    and job name (ApiError, naming the workflow, when one cannot be had or the index cannot
    be asked). One question per workflow: its jobs share one environment."""
    pinned: dict[str, dict[str, Pins]] = {}
    for workflow in spec.workflows:
        request = packages_request(workflow, deployed.get(workflow.name))
        if request is None:
            continue
        try:
            answer = api.call("POST", "/api/python-packages/resolved", json=request)
        except ApiError as exc:
            message = f"workflows.{workflow.name}: {exc.message}"
            raise ApiError(message, status=exc.status, code=exc.code) from None
        pinned[workflow.name] = {
            job["name"]: (job["adaptor"], tuple(job["requirements"])) for job in answer["jobs"]
        }
    return pinned


def _find_project(api: Api, key: str) -> dict[str, Any] | None:
    """The project whose id is ``key``, else the one so named (ApiError if several are)."""
    named = []
    for project in api.pages("/api/projects"):
        if project["id"] == key:
            return project
        if project["name"] == key:
            named.append(project)
    if len(named) > 1:
        raise ApiError(
            f"{len(named)} projects are named {key!r}: give the file the id of one (id: …)",
            code="ambiguous",
        )
    return named[0] if named else None


def pull_project(api: Api, key: str, previous: ProjectSpec | None = None) -> ProjectSpec:
    """The deployed project ``key`` (an id or a name) as a spec; ``previous``, the local file,
    lends its trigger names and job file names."""
    project = _find_project(api, key)
    if project is None:
        raise ApiError(f"no project has the id or name {key!r}", status=404, code="not_found")
    path = f"/api/projects/{project['id']}/credentials"
    credentials = {item["id"]: item["name"] for item in api.pages(path)}
    listed = (
        [name for name in previous.credentials if name in credentials.values()] if previous else []
    )
    before = {w.name: w for w in previous.workflows} if previous else {}
    path = f"/api/projects/{project['id']}/keychains"
    keychains = {item["id"]: item["name"] for item in api.pages(path)}
    workflows: list[WorkflowSpec] = [
        spec_of_workflow(document, credentials, before.get(document["name"]), keychains)
        for document in api.pages(f"/api/projects/{project['id']}/workflows")
    ]
    return ProjectSpec(
        name=project["name"],
        workflows=tuple(workflows),
        id=project["id"],
        concurrency=project.get("concurrency"),
        credentials=(*listed, *sorted(set(credentials.values()) - set(listed))),
    )


# -- the commands ------------------------------------------------------------------------------

_file = click.argument(
    "project_file", type=click.Path(dir_okay=False, path_type=Path), default="project.yaml"
)


@click.command("deploy")
@_file
@url_option
@token_file_option
@click.option("--prune", is_flag=True, help="Delete deployed workflows the file does not name.")
def deploy(project_file: Path, url: str | None, token_file: str | None, prune: bool) -> None:
    """Create or update a project from its file (YAML) and print what changed."""
    try:
        spec = load(project_file)
    except ProjectFileError as exc:
        lines = exc.lines()
        raise CliError("deploy", *(f"{exc.file}: {line}" for line in lines)) from exc
    with connect("deploy", url, token_file) as api:
        try:
            done = deploy_project(api, spec, prune=prune)
        except ApiError as exc:
            raise CliError("deploy", exc.message, exit_code=1) from exc
    for line in done.changes:
        click.echo(line)


@click.command("pull")
@_file
@click.option("--project", "key", help="Its id or name [the file's id, else its name].")
@url_option
@token_file_option
def pull(project_file: Path, key: str | None, url: str | None, token_file: str | None) -> None:
    """Write a deployed project to its file (YAML), with job files beside it."""
    previous = _previous(project_file)
    key = key or (previous.id or previous.name if previous else None) or _named(project_file)
    if not key:
        message = f"{project_file} does not exist or names no project: give --project"
        raise CliError("pull", message)
    with connect("pull", url, token_file) as api:
        try:
            spec = pull_project(api, key, previous)
        except ApiError as exc:
            raise CliError("pull", exc.message, exit_code=1) from exc
    inline = frozenset(
        (w.name, j.name)
        for w in (previous.workflows if previous else ())
        for j in w.jobs
        if j.body_file is None
    )
    text, files = render(spec, inline=inline)
    folder = project_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body, encoding="utf-8")
    if previous is not None:  # a hand-written file keeps its layout (project/layout.py)
        text = keep_layout(project_file.read_text(encoding="utf-8"), text, spec, folder)
    project_file.write_text(text, encoding="utf-8")
    written = ", ".join([str(project_file), *(str(folder / name) for name in files)])
    click.echo(f"wrote {written}")


def _previous(path: Path) -> ProjectSpec | None:
    """The local file as a spec, when it exists and reads cleanly."""
    if not path.exists():
        return None
    try:
        return load(path)
    except ProjectFileError:
        return None


def _named(path: Path) -> str | None:
    """The id or name in a local file that does not read cleanly (a job file gone, say)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(document, dict):
        return None
    key = document.get("id") or document.get("name")
    return key if isinstance(key, str) else None
