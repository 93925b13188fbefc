"""``fulmen credentials``: a project's credentials, by name, through the REST API.

* ``list PROJECT``: each credential's name, id and when it last changed (never its value:
  values are write-only);
* ``set PROJECT NAME``: create the credential or replace its value, a JSON object (what a job
  reads as ``state["configuration"]``) read from ``--from-file PATH`` (``-``: standard input),
  from standard input when it is not a terminal, or else from a prompt that does not echo it;
  never from an argument, which would leave it in the shell's history and the process list;
* ``delete PROJECT NAME``;
* ``oauth2 PROJECT NAME``: create an OAuth2 credential, or replace its settings (issue 19),
  its client secret read as a value is (never from an argument); a client-credentials one is
  connected at once, an authorization-code one on the dashboard ("Connect");
* ``status PROJECT NAME``: an OAuth2 credential's state (connected, needs re-authorisation,
  when its token expires), never a token.

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
    """A project's credentials: list, set a value, delete; OAuth2 ones and their state."""


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


@credentials.command("oauth2")
@click.argument("project")
@click.argument("name")
@click.option(
    "--grant",
    type=click.Choice(["authorization_code", "client_credentials"]),
    required=True,
    help="authorization_code (with PKCE: a person connects it on the dashboard) or "
    "client_credentials (connected at once).",
)
@click.option("--token-url", required=True, help="The provider's token endpoint.")
@click.option(
    "--authorization-url", default="", help="The provider's authorization endpoint (code grant)."
)
@click.option("--client-id", required=True, help="The client's id at the provider.")
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for; repeat for several.")
@click.option(
    "--body-file",
    type=click.File("r", encoding="utf-8"),
    help="Other fields jobs get beside the token: a JSON object in this file.",
)
@url_option
@token_file_option
def oauth2_credential(
    project: str,
    name: str,
    grant: str,
    token_url: str,
    authorization_url: str,
    client_id: str,
    scopes: tuple[str, ...],
    body_file: Any,
    url: str | None,
    token_file: str | None,
) -> None:
    """Create the OAuth2 credential NAME in PROJECT, or replace its settings (its tokens are
    then dropped, and it is connected again).

    The client secret is read from standard input when it is not a terminal, or else from a
    prompt that does not echo it; never from an argument.
    """
    command = "credentials oauth2"
    body = _value(body_file, command) if body_file is not None else {}
    secret = _secret(command)
    document = {
        "name": name,
        "grant": grant,
        "token_url": token_url,
        "authorization_url": authorization_url,
        "client_id": client_id,
        "client_secret": secret,
        "scopes": list(scopes),
        "body": body,
    }
    with connect(command, url, token_file) as api:
        found = Names(command, api).project(project)
        path = f"/api/projects/{found['id']}/credentials"
        existing = [c for c in _credentials(command, api, found["id"]) if c["name"] == name]
        try:
            if existing:
                credential_id = existing[0]["id"]
                state = api.call(
                    "PUT", f"{path}/{credential_id}/oauth2", json={"id": credential_id, **document}
                )
            else:
                state = api.call("POST", f"{path}/oauth2", json=document)
        except ApiError as exc:
            raise CliError(command, exc.message, exit_code=1) from exc
    click.echo(f"credential {name} ({state['id']}): {'replaced' if existing else 'created'}")
    _echo_state(state)


@credentials.command("status")
@click.argument("project")
@click.argument("name")
@url_option
@token_file_option
def oauth2_status(project: str, name: str, url: str | None, token_file: str | None) -> None:
    """An OAuth2 credential's state: connected, not connected or needing re-authorisation
    (with the provider's words), and when its token expires. Never a token."""
    command = "credentials status"
    with connect(command, url, token_file) as api:
        found = Names(command, api).project(project)
        credential = pick(command, "credential", name, _credentials(command, api, found["id"]))
        try:
            state = api.call("GET", f"/api/credentials/{credential['id']}/oauth2")
        except ApiError as exc:
            raise CliError(command, exc.message, exit_code=1) from exc
    _echo_state(state)


def _echo_state(state: dict[str, Any]) -> None:
    click.echo(f"status: {state['status']}")
    if state["problem"]:
        click.echo(f"problem: {state['problem']}")
    if state["expires_at"]:
        click.echo(f"token expires at: {state['expires_at']}")
    if state["status"] == "not_connected" and state["grant"] == "authorization_code":
        click.echo("connect it on the dashboard's credentials page (Connect)")


def _secret(command: str) -> str:
    """The client secret, from standard input or a prompt (see oauth2)."""
    if not sys.stdin.isatty():
        secret = sys.stdin.read().strip()
    else:
        secret = click.prompt("Client secret", hide_input=True).strip()
    if not secret:
        raise CliError(command, "the client secret is empty")
    return secret


def _credentials(command: str, api: Api, project_id: str) -> list[dict[str, Any]]:
    try:
        return list(api.pages(f"/api/projects/{project_id}/credentials"))
    except ApiError as exc:
        raise CliError(command, exc.message, exit_code=1) from exc


def _value(source: Any, command: str = "credentials set") -> dict[str, Any]:
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
            command, f"the value from {where} is not JSON: {exc.msg} (line {exc.lineno})"
        ) from None
    if not isinstance(value, dict):
        raise CliError(
            command,
            f"the value from {where} must be a JSON object, like {_EXAMPLE}, not "
            f"{type(value).__name__}",
        )
    return value
