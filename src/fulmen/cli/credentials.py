"""``fulmen credentials``: a project's credentials, by name, through the REST API.

* ``list PROJECT``: each credential's name, id and when it last changed (never its value:
  values are write-only);
* ``set PROJECT NAME``: create the credential or replace its value, a JSON object (what a job
  reads as ``state["configuration"]``) read from ``--from-file PATH`` (``-``: standard input),
  from standard input when it is not a terminal, or else from a prompt that does not echo it;
  never from an argument, which would leave it in the shell's history and the process list;
* ``delete PROJECT NAME``.

``PROJECT`` is a name or an id (names.py). The value is checked here (a JSON object) before
anything is sent, and the coordinator's refusal, if any, is one line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import Api, connect, token_file_option, url_option
from fulmen.cli.names import Names, pick
from fulmen.errors import ApiError

__all__ = ["credentials"]

_EXAMPLE = '{"username": "ada", "password": "…"}'


@click.group()
def credentials() -> None:
    """A project's credentials: list, set a value, delete."""


@credentials.command("list")
@click.argument("project")
@url_option
@token_file_option
def list_credentials(project: str, url: str | None, token_file: str | None) -> None:
    """The project's credentials: name, id, last changed (never their values)."""
    with connect("credentials list", url, token_file) as api:
        found = Names("credentials list", api).project(project)
        items = _credentials("credentials list", api, found["id"])
    click.echo("NAME\tID\tUPDATED")
    for item in items:
        click.echo(f"{item['name']}\t{item['id']}\t{item['updated_at']}")


@credentials.command("set")
@click.argument("project")
@click.argument("name")
@click.option(
    "--from-file",
    "source",
    type=click.File("r", encoding="utf-8"),
    help="Read the value (a JSON object) from this file; - for standard input.",
)
@url_option
@token_file_option
def set_credential(
    project: str, name: str, source: Any, url: str | None, token_file: str | None
) -> None:
    """Create the credential NAME in PROJECT, or replace its value.

    The value is a JSON object, read from --from-file, from standard input when it is not a
    terminal, or else from a prompt that does not echo it; never from an argument.
    """
    value = _value(source)
    with connect("credentials set", url, token_file) as api:
        found = Names("credentials set", api).project(project)
        path = f"/api/projects/{found['id']}/credentials"
        existing = [
            c for c in _credentials("credentials set", api, found["id"]) if c["name"] == name
        ]
        try:
            if existing:
                credential_id = existing[0]["id"]
                api.call(
                    "PUT",
                    f"{path}/{credential_id}",
                    json={"id": credential_id, "name": name, "body": value},
                )
                click.echo(f"credential {name} ({credential_id}): value replaced")
            else:
                made = api.call("POST", path, json={"name": name, "body": value})
                click.echo(f"credential {name} ({made['id']}): created")
        except ApiError as exc:
            raise CliError("credentials set", exc.message, exit_code=1) from exc


@credentials.command("delete")
@click.argument("project")
@click.argument("name")
@url_option
@token_file_option
def delete_credential(project: str, name: str, url: str | None, token_file: str | None) -> None:
    """Delete the credential NAME (or id) of PROJECT; jobs that used it run without one."""
    with connect("credentials delete", url, token_file) as api:
        found = Names("credentials delete", api).project(project)
        items = _credentials("credentials delete", api, found["id"])
        credential = pick("credentials delete", "credential", name, items)
        try:
            api.call("DELETE", f"/api/credentials/{credential['id']}")
        except ApiError as exc:
            raise CliError("credentials delete", exc.message, exit_code=1) from exc
    click.echo(f"credential {credential['name']} ({credential['id']}): deleted")


def _credentials(command: str, api: Api, project_id: str) -> list[dict[str, Any]]:
    try:
        return list(api.pages(f"/api/projects/{project_id}/credentials"))
    except ApiError as exc:
        raise CliError(command, exc.message, exit_code=1) from exc


def _value(source: Any) -> dict[str, Any]:
    """The value to store, from the file, standard input or a prompt (see set)."""
    if source is not None:
        text, where = source.read(), "--from-file" if source.name != "<stdin>" else "stdin"
    elif not sys.stdin.isatty():
        text, where = sys.stdin.read(), "stdin"
    else:
        text = click.prompt(f"Value (a JSON object, e.g. {_EXAMPLE})", hide_input=True)
        where = "the prompt"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            "credentials set", f"the value from {where} is not JSON: {exc.msg} (line {exc.lineno})"
        ) from None
    if not isinstance(value, dict):
        raise CliError(
            "credentials set",
            f"the value from {where} must be a JSON object, like {_EXAMPLE}, not "
            f"{type(value).__name__}",
        )
    return value
