"""``fulmen server``: the coordinator, and ``fulmen server token``: its REST API tokens.

Settings come from the environment (fulmen.config.CoordinatorSettings: ``WORKER_SECRET``,
``WORKER_RUNS_PRIVATE_KEY``, ``FULMEN_DATABASE_URL``…) with a flag for the common ones; a
flag wins. A missing or malformed secret, key or value stops start-up with one line naming
the variable, exit status 2. Once listening it prints ``listening on http://HOST:PORT`` (the
real port when ``--port 0``).

SIGTERM or SIGINT (Ctrl-C) drains, then stops with exit status 0: connected workers get the
answers to what they had asked and are sent away with close code 1012 (they reconnect, here
once restarted or to another coordinator, and resend), then uvicorn's graceful shutdown
finishes the HTTP requests under way and the store is closed. Each step is bounded (the
socket drain by socket.DRAIN_TIMEOUT, the requests by ``SHUTDOWN_TIMEOUT``); a second SIGINT
stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Iterator
from typing import Any

import click
import uvicorn

from fulmen.cli.bootstrap import CliError, configure_logging, log_format_option, run_async
from fulmen.config import CoordinatorSettings
from fulmen.coordinator import Coordinator, audit, build_app, open_coordinator
from fulmen.coordinator.api import auth
from fulmen.coordinator.core import credential_key, database_url
from fulmen.errors import ConfigError, FulmenError, NotFoundError
from fulmen.listen import bind
from fulmen.store import Role, open_store, sqlite_path

__all__ = ["server"]

#: Lightning's inbound frame limit is 11 MB (§1.1); a 10 MB dataclip must fit in a frame.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: How long uvicorn's shutdown lets HTTP requests under way finish, once the sockets drained.
SHUTDOWN_TIMEOUT = 10

log = logging.getLogger(__name__)


@click.group(invoke_without_command=True)
@click.option("--host", "listen_address", help="Address to listen on [LISTEN_ADDRESS; 127.0.0.1].")
@click.option("-p", "--port", type=click.IntRange(min=0), help="Port [FULMEN_PORT; 4000].")
@click.option("--data-dir", help="SQLite database and key directory [FULMEN_DATA_DIR].")
@click.option("--database-url", help="sqlite:///… or postgresql://… [FULMEN_DATABASE_URL].")
@click.option(
    "--log",
    "log_level",
    type=click.Choice(["debug", "info", "warning"]),
    default="info",
    show_default=True,
    help="How much the coordinator logs.",
)
@log_format_option
@click.pass_context
def server(ctx: click.Context, /, log_level: str, log_format: str, **flags: Any) -> None:
    """Run the coordinator: REST API, webhooks, cron, and the worker socket."""
    try:
        settings = settings_from(CoordinatorSettings.from_env(), flags)
    except ConfigError as exc:
        raise CliError("server", exc.message) from exc
    ctx.obj = settings
    if ctx.invoked_subcommand is not None:
        return
    configure_logging(getattr(logging, log_level.upper()), log_format)
    logging.getLogger("uvicorn.error").addFilter(_denial_noise)
    try:
        run_async(_serve(settings, log_level))
    except FulmenError as exc:
        raise CliError("server", exc.message) from exc


def _denial_noise(record: logging.LogRecord) -> bool:
    """uvicorn's sans-I/O WebSocket logs an error after every denial response (the 401 to a
    bad worker token), although the response went out: our own warning says what happened."""
    return "without completing handshake" not in record.getMessage()


def settings_from(settings: CoordinatorSettings, flags: dict[str, Any]) -> CoordinatorSettings:
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(settings, **given)


async def _serve(settings: CoordinatorSettings, log_level: str) -> None:
    sock = bind(settings.listen_address, settings.port, flag="-p/--port (FULMEN_PORT)")
    async with open_coordinator(settings) as coordinator:
        config = uvicorn.Config(
            build_app(coordinator),
            host=settings.listen_address,
            port=settings.port,
            ws_max_size=MAX_FRAME_BYTES,
            log_level="warning" if log_level != "debug" else "info",
            # An access line is at info, which only --log debug shows; without one, uvicorn
            # still formats each request's client and path for a line nobody keeps.
            access_log=log_level == "debug",
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
            # The app believes X-Forwarded-For from FULMEN_TRUSTED_PROXIES only (app.py);
            # uvicorn's own default would believe it from any local process.
            proxy_headers=False,
        )
        userver = _Server(config, coordinator)
        serving = asyncio.get_running_loop().create_task(userver.serve(sockets=[sock]))
        while not userver.started and not serving.done():
            await asyncio.sleep(0.05)
        if userver.started:
            host, port = userver.servers[0].sockets[0].getsockname()[:2]
            click.echo(f"fulmen server: listening on http://{host}:{port}", err=True)
        await serving


class _Server(uvicorn.Server):
    """uvicorn's server, but a stop signal drains the worker sockets first, and the process
    exits 0 afterwards.

    uvicorn's own handling would close every WebSocket at once (answers still being written
    are lost) and, once shut down, raise the signal again so that the process dies of it
    (status 143 for SIGTERM): a supervisor reads that as a crash.
    """

    def __init__(self, config: uvicorn.Config, coordinator: Coordinator) -> None:
        super().__init__(config)
        self._coordinator = coordinator
        self._stopping: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, self._on_signal, number)
        try:
            yield
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)

    def _on_signal(self, number: int) -> None:
        if self._stopping is None:
            log.info("%s: draining, then stopping", signal.Signals(number).name)
            self._stopping = asyncio.get_running_loop().create_task(self._drain())
        elif number == signal.SIGINT:  # a second Ctrl-C: now
            self.force_exit = self.should_exit = True

    async def _drain(self) -> None:
        try:
            await self._coordinator.hub.drain()
        finally:
            self.should_exit = True


@server.group()
def token() -> None:
    """REST API tokens (shown once when made)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what the token is for.")
@click.option("--user", "email", help="A user's personal token: it acts with their roles.")
@click.option("--project", "project_id", help="A service token of this project (with --role).")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    help="The service token's role in its project.",
)
@click.pass_obj
def create_token(
    settings: CoordinatorSettings,
    name: str,
    email: str | None,
    project_id: str | None,
    role: str | None,
) -> None:
    """Make a token and print it (only this once): a user's (--user), a project's with a
    role (--project, --role), or without either an operator's, which acts as an instance
    admin (as the tokens made before there were users do)."""
    if (project_id is None) != (role is None):
        raise click.UsageError("a service token takes both --project and --role")
    if email is not None and project_id is not None:
        raise click.UsageError("a token is a user's (--user) or a project's (--project), not both")

    url = local_store(settings, "server token create", make=True)

    async def save() -> tuple[str, int]:
        async with await open_store(url, credential_key=credential_key(settings)) as store:
            user_id = None
            if email is not None:
                user = await store.find_user(email)
                if user is None:
                    raise NotFoundError(f"no user has the e-mail {email}", field="email")
                user_id = user.id
            if project_id is not None:
                await store.get_project(project_id)
            secret, _ = await auth.issue(
                store,
                audit.command_line(),
                name,
                user_id=user_id,
                project_id=project_id,
                role=Role(role) if role else None,
            )
            return secret, (await store.count_users())[0]

    secret, users = _run(save())
    if users and email is None and project_id is None:
        click.echo(
            "note: this operator token acts as an instance admin, in every project; "
            "give a person --user EMAIL (their own roles) or a program --project ID --role ROLE",
            err=True,
        )
    click.echo(secret)


@token.command("list")
@click.pass_obj
def list_tokens(settings: CoordinatorSettings) -> None:
    """The tokens' ids, names, creation and last-use times (never the tokens)."""

    url = local_store(settings, "server token list")

    async def listing() -> None:
        async with await open_store(url) as store:
            for row in await store.list_api_tokens():
                made = row.inserted_at.isoformat() if row.inserted_at else ""
                used = row.last_used_at.isoformat() if row.last_used_at else "never used"
                click.echo(f"{row.id}\t{row.name}\t{made}\t{used}")

    _run(listing())


@token.command("revoke")
@click.argument("token_id")
@click.pass_obj
def revoke_token(settings: CoordinatorSettings, token_id: str) -> None:
    """Delete a token by its id (the part after fmn_, up to the next _)."""

    url = local_store(settings, "server token revoke")

    async def revoke() -> None:
        async with await open_store(url) as store:
            await auth.revoke(store, audit.command_line(), token_id)

    _run(revoke())
    click.echo(f"revoked {token_id}")


def local_store(settings: CoordinatorSettings, command: str, *, make: bool = False) -> str:
    """The URL of the store a command on this host works on. A SQLite file that is not there
    is refused (``make``: made, and said so): run elsewhere than the data directory the
    coordinator uses, such a command would quietly work on a store nobody serves."""
    url = database_url(settings)
    if not url.startswith("sqlite:") or sqlite_path(url).exists():
        return url
    where = f"no store at {sqlite_path(url)}"
    hint = "run this where `fulmen up` or `fulmen server` keeps its data, or name that directory"
    if not make:
        raise CliError(command, f"{where}: {hint} (--data-dir, FULMEN_DATA_DIR)")
    click.echo(f"fulmen {command}: {where}: making a new one ({hint} to use theirs)", err=True)
    return url


def _run(work: Any) -> Any:
    try:
        return run_async(work)
    except FulmenError as exc:
        raise CliError("server token", exc.message) from exc
