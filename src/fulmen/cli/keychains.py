"""``fulmen keychains``: a project's keychains (issue 19), by name, through the REST API.

* ``list PROJECT``: each keychain's name, id, path, entries and default, credentials by name;
* ``set PROJECT NAME --path PATH [--entry VALUE=CREDENTIAL ...] [--default CREDENTIAL]``:
  create the keychain or replace it whole (entries not given are dropped);
* ``delete PROJECT NAME``.

``PROJECT`` and each ``CREDENTIAL`` are a name or an id (names.py). The coordinator checks the
path and that each credential is the project's; its refusal, if any, is one line.
"""

from __future__ import annotations

from typing import Any

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import Api, connect, token_file_option, url_option
from fulmen.cli.names import Names, pick
from fulmen.errors import ApiError

__all__ = ["keychains"]


@click.group()
def keychains() -> None:
    """A project's keychains: pick a job's credential by a value in each run's input."""


@keychains.command("list")
@click.argument("project")
@url_option
@token_file_option
def list_keychains(project: str, url: str | None, token_file: str | None) -> None:
    """The project's keychains: name, id, path, then each value and its credential."""
    with connect("keychains list", url, token_file) as api:
        found = Names("keychains list", api).project(project)
        items = _list("keychains list", api, f"/api/projects/{found['id']}/keychains")
        names = {
            c["id"]: c["name"]
            for c in _list("keychains list", api, f"/api/projects/{found['id']}/credentials")
        }
    click.echo("NAME\tID\tPATH")
    for item in items:
        click.echo(f"{item['name']}\t{item['id']}\t{item['path']}")
        for value, credential_id in item["entries"].items():
            click.echo(f"  {value} = {names.get(credential_id, credential_id)}")
        default = item["default_credential_id"]
        shown = names.get(default, default) if default else "(none: the run fails)"
        click.echo(f"  * = {shown}")


@keychains.command("set")
@click.argument("project")
@click.argument("name")
@click.option("--path", required=True, help="A JSONPath into each run's input: $.data.site_id")
@click.option(
    "--entry",
    "entries",
    multiple=True,
    metavar="VALUE=CREDENTIAL",
    help="The value found at the path, and the credential (name or id) it picks; repeat.",
)
@click.option("--default", "default", help="The credential (name or id) when no entry matches.")
@url_option
@token_file_option
def set_keychain(
    project: str,
    name: str,
    path: str,
    entries: tuple[str, ...],
    default: str | None,
    url: str | None,
    token_file: str | None,
) -> None:
    """Create the keychain NAME in PROJECT, or replace it whole with what is given."""
    command = "keychains set"
    with connect(command, url, token_file) as api:
        found = Names(command, api).project(project)
        base = f"/api/projects/{found['id']}/keychains"
        credentials = _list(command, api, f"/api/projects/{found['id']}/credentials")
        document: dict[str, Any] = {
            "name": name,
            "path": path,
            "entries": {
                value: pick(command, "credential", credential, credentials)["id"]
                for value, credential in (_entry(text) for text in entries)
            },
            "default_credential_id": (
                pick(command, "credential", default, credentials)["id"] if default else None
            ),
        }
        existing = [k for k in _list(command, api, base) if k["name"] == name]
        try:
            if existing:
                keychain_id = existing[0]["id"]
                api.call("PUT", f"{base}/{keychain_id}", json={"id": keychain_id, **document})
                click.echo(f"keychain {name} ({keychain_id}): replaced")
            else:
                made = api.call("POST", base, json=document)
                click.echo(f"keychain {name} ({made['id']}): created")
        except ApiError as exc:
            raise CliError(command, exc.message, exit_code=1) from exc


@keychains.command("delete")
@click.argument("project")
@click.argument("name")
@url_option
@token_file_option
def delete_keychain(project: str, name: str, url: str | None, token_file: str | None) -> None:
    """Delete the keychain NAME (or id) of PROJECT; refused while a job names it."""
    command = "keychains delete"
    with connect(command, url, token_file) as api:
        found = Names(command, api).project(project)
        items = _list(command, api, f"/api/projects/{found['id']}/keychains")
        keychain = pick(command, "keychain", name, items)
        try:
            api.call("DELETE", f"/api/keychains/{keychain['id']}")
        except ApiError as exc:
            raise CliError(command, exc.message, exit_code=1) from exc
    click.echo(f"keychain {keychain['name']} ({keychain['id']}): deleted")


def _entry(text: str) -> tuple[str, str]:
    value, equals, credential = (part.strip() for part in text.rpartition("="))
    if not equals or not value or not credential:
        raise CliError("keychains set", f"--entry {text!r}: write VALUE=CREDENTIAL")
    return value, credential


def _list(command: str, api: Api, path: str) -> list[dict[str, Any]]:
    try:
        return list(api.pages(path))
    except ApiError as exc:
        raise CliError(command, exc.message, exit_code=1) from exc
