"""``fulmen deploy`` and ``fulmen pull``: a project file to a coordinator and back, through
its REST API (fulmen.project says how things are matched; this module only talks HTTP).

``deploy`` reads and checks the whole file first (an invalid file changes nothing and exits 2
with one ``path: message`` line per problem), then creates or updates the project, its
credentials (names only: a new one is created empty, its value set through the API), and each
workflow, printing one line per thing: ``created``, ``updated`` or ``unchanged``. Workflows
on the server that the file does not name are kept (and said so) unless ``--prune``.

``pull`` writes the deployed project back to the file, with its job files beside it.

The API's address and token: ``--url`` / ``FULMEN_URL`` (``http://127.0.0.1:4000``), and
``FULMEN_API_TOKEN``, or the file ``--token-file`` / ``FULMEN_API_TOKEN_FILE``, by default the
one ``fulmen up`` writes (``./.fulmen/api-token``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import click
import httpx2
import yaml

from fulmen.config import ClientSettings
from fulmen.errors import ApiError, ConfigError, ProjectFileError
from fulmen.project import (
    ProjectSpec,
    WorkflowSpec,
    desired_workflow,
    load,
    render,
    same_workflow,
    spec_of_workflow,
)

__all__ = ["Api", "Deployed", "deploy", "deploy_project", "pull", "pull_project"]


class CommandError(click.ClickException):
    """One line per problem on stderr, exit status 2: a file or a setting is at fault."""

    exit_code = 2

    def __init__(self, command: str, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.command = command
        self.lines = lines

    def show(self, file: IO[Any] | None = None) -> None:
        for line in self.lines:
            click.echo(f"fulmen {self.command}: {line}", err=True)


class RefusedError(CommandError):
    """Exit status 1: the coordinator refused, or could not be reached."""

    exit_code = 1


class Api:
    """The few REST API calls deploy and pull make; every failure is an ApiError."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx2.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise ApiError(
                f"cannot reach the coordinator at {self.url}: {exc}", code="unreachable"
            ) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise _refusal(method, path, response.status_code, body)
        return body

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a listing, page after page."""
        cursor = None
        while True:
            page = self.call("GET", path, params={"cursor": cursor} if cursor else None)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return


def _refusal(method: str, path: str, status: int, body: Any) -> ApiError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        where = f" ({error['field']})" if error.get("field") else ""
        return ApiError(f"{error.get('message')}{where}", status=status, code=error.get("code"))
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 401:
        message = detail if isinstance(detail, str) else "the API token was refused"
        return ApiError(message, status=status, code="unauthorized")
    return ApiError(f"{method} {path} answered {status}: {detail or body}", status=status)


@dataclass
class Deployed:
    """What a deploy did: the project's id, and one line per thing it looked at."""

    project_id: str
    changes: list[str] = field(default_factory=list)


def deploy_project(api: Api, spec: ProjectSpec, *, prune: bool = False) -> Deployed:
    """Create or update the project, its credentials and workflows to match ``spec``."""
    project, verb = _ensure_project(api, spec)
    done = Deployed(project["id"], [f"project {spec.name}: {verb} ({project['id']})"])
    credentials = _ensure_credentials(api, project["id"], spec, done)
    deployed: dict[str, dict[str, Any]] = {}
    for document in api.pages(f"/api/projects/{project['id']}/workflows"):
        deployed.setdefault(document["name"], document)
    for workflow in spec.workflows:
        existing = deployed.pop(workflow.name, None)
        document = desired_workflow(workflow, existing, credentials)
        if existing is None:
            saved = api.call("POST", f"/api/projects/{project['id']}/workflows", json=document)
            done.changes.append(f"workflow {workflow.name}: created")
        elif same_workflow(existing, document):
            done.changes.append(f"workflow {workflow.name}: unchanged")
        else:
            saved = api.call(
                "PUT",
                f"/api/workflows/{existing['id']}",
                json=document,
                params={"expected_version": existing["version"]},
            )
            done.changes.append(f"workflow {workflow.name}: updated (version {saved['version']})")
    for name, left in deployed.items():
        if prune:
            api.call("DELETE", f"/api/workflows/{left['id']}")
            done.changes.append(f"workflow {name}: deleted (not in the file)")
        else:
            done.changes.append(f"workflow {name}: not in the file (kept; --prune deletes it)")
    return done


def _ensure_project(api: Api, spec: ProjectSpec) -> tuple[dict[str, Any], str]:
    body = {"name": spec.name, "concurrency": spec.concurrency}
    found = _find_project(api, spec.id or spec.name)
    if found is None:
        wanted = {**body, "id": spec.id} if spec.id else body
        created = api.call("POST", "/api/projects", json=wanted)
        return created, "created"
    if found["name"] == spec.name and found["concurrency"] == spec.concurrency:
        return found, "unchanged"
    # Settings the file has no words for (made through the API) are sent back as they are.
    kept = {k: v for k, v in found.items() if k not in ("id", "inserted_at", "updated_at")}
    return api.call("PUT", f"/api/projects/{found['id']}", json={**kept, **body}), "updated"


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


def _ensure_credentials(
    api: Api, project_id: str, spec: ProjectSpec, done: Deployed
) -> dict[str, str]:
    path = f"/api/projects/{project_id}/credentials"
    ids = {item["name"]: item["id"] for item in api.pages(path)}
    for name in spec.credentials:
        if name not in ids:
            created = api.call("POST", path, json={"name": name, "body": {}})
            ids[name] = created["id"]
            done.changes.append(
                f"credential {name}: created empty; set its value with PUT {path}/{created['id']}"
            )
    return ids


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
    workflows: list[WorkflowSpec] = [
        spec_of_workflow(document, credentials, before.get(document["name"]))
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

_url = click.option("--url", help="The coordinator [FULMEN_URL; http://127.0.0.1:4000].")
_token_file = click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding an API token [FULMEN_API_TOKEN_FILE; ./.fulmen/api-token]; "
    "FULMEN_API_TOKEN wins.",
)
_file = click.argument(
    "project_file", type=click.Path(dir_okay=False, path_type=Path), default="project.yaml"
)


def connect(command: str, url: str | None, token_file: str | None) -> Api:
    """An Api for the settings, flags laid over the environment's.

    Raises:
        CommandError: no token anywhere (exit 2).
    """
    try:
        settings = ClientSettings.from_env()
    except ConfigError as exc:
        raise CommandError(command, [exc.message]) from exc
    if url:
        settings = replace(settings, url=url)
    if token_file:
        settings = replace(settings, token=None, token_file=token_file)
    if settings.token is not None:
        return Api(settings.url, settings.token.value)
    try:
        token = Path(settings.token_file).read_text(encoding="utf-8").strip()
    except OSError:
        token = ""
    if not token:
        message = (
            f"no API token: set FULMEN_API_TOKEN or --token-file ({settings.token_file} is "
            "missing or empty; `fulmen up` writes it, `fulmen server token create` makes one)"
        )
        raise CommandError(command, [message])
    return Api(settings.url, token)


@click.command("deploy")
@_file
@_url
@_token_file
@click.option("--prune", is_flag=True, help="Delete deployed workflows the file does not name.")
def deploy(project_file: Path, url: str | None, token_file: str | None, prune: bool) -> None:
    """Create or update a project from its file (YAML) and print what changed."""
    try:
        spec = load(project_file)
    except ProjectFileError as exc:
        lines = exc.lines()
        raise CommandError("deploy", [f"{exc.file}: {line}" for line in lines]) from exc
    with connect("deploy", url, token_file) as api:
        try:
            done = deploy_project(api, spec, prune=prune)
        except ApiError as exc:
            raise RefusedError("deploy", [exc.message]) from exc
    for line in done.changes:
        click.echo(line)


@click.command("pull")
@_file
@click.option("--project", "key", help="Its id or name [the file's id, else its name].")
@_url
@_token_file
def pull(project_file: Path, key: str | None, url: str | None, token_file: str | None) -> None:
    """Write a deployed project to its file (YAML), with job files beside it."""
    previous = _previous(project_file)
    key = key or (previous.id or previous.name if previous else None) or _named(project_file)
    if not key:
        message = f"{project_file} does not exist or names no project: give --project"
        raise CommandError("pull", [message])
    with connect("pull", url, token_file) as api:
        try:
            spec = pull_project(api, key, previous)
        except ApiError as exc:
            raise RefusedError("pull", [exc.message]) from exc
    text, files = render(spec)
    folder = project_file.parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body, encoding="utf-8")
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
