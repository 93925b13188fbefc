"""``fulmen users``: the people who sign in to the dashboard (issue 18), managed on the
coordinator's store directly, as ``fulmen server token`` manages tokens: the same data
directory or database (``--data-dir`` / ``FULMEN_DATA_DIR``, ``--database-url`` /
``FULMEN_DATABASE_URL``), whether or not the coordinator is running. As there, a command
where no store is says so (``create`` makes one, and says so) rather than working on a store
nobody serves.

* ``create EMAIL [--admin] [--name NAME]``: a user; ``--admin`` makes an instance admin (the
  first one takes over the API tokens made before any user existed);
* ``list``: every user, one per line (id, e-mail, name, role, status, created);
* ``disable EMAIL`` / ``enable EMAIL``: a disabled user's sessions end at once and their
  tokens are refused; the last active instance admin is never disabled;
* ``set-password EMAIL``: a new password (a forgotten one, say); the user's sessions end.

Each change is in the audit trail, by the host's user (``cli``: uid and name), as the
dashboard's and the API's are by theirs. A password is never an argument (it would stay in
the shell's history and show in ``ps``): it is typed at a prompt, twice, or read from the
first line of standard input with ``--password-stdin``, for scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from fulmen.cli.bootstrap import CliError, run_async
from fulmen.cli.server import local_store, settings_from
from fulmen.config import CoordinatorSettings
from fulmen.coordinator import audit
from fulmen.coordinator.passwords import hash_password
from fulmen.errors import ConfigError, FulmenError
from fulmen.store import NewUser, Store, Target, User, open_store

__all__ = ["users"]

T = TypeVar("T")

password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)


@click.group()
@click.option("--data-dir", help="SQLite database and key directory [FULMEN_DATA_DIR].")
@click.option("--database-url", help="sqlite:///… or postgresql://… [FULMEN_DATABASE_URL].")
@click.pass_context
def users(ctx: click.Context, /, **flags: Any) -> None:
    """Users who sign in to the dashboard (on the coordinator's store)."""
    try:
        ctx.obj = settings_from(CoordinatorSettings.from_env(), flags)
    except ConfigError as exc:
        raise CliError("users", exc.message) from exc


@users.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="An instance admin: manages users, owns every project.")
@click.option("--name", default="", help="How others see the user (the e-mail otherwise).")
@password_stdin
@click.pass_obj
def create(
    settings: CoordinatorSettings, email: str, admin: bool, name: str, password_stdin: bool
) -> None:
    """Make a user who signs in with EMAIL and a password."""
    password = _password(password_stdin)

    async def make(store: Store) -> User:
        hashed = await hash_password(password)
        async with store.together():
            user = await store.create_user(NewUser(email, name, hashed, instance_admin=admin))
            await _record(store, "user.created", user, after=audit.user_document(user))
        return user

    user = _on_store(settings, "create", make, new_store=True)
    role = "instance admin" if user.instance_admin else "user"
    click.echo(f"created {role} {user.email} ({user.id})")


@users.command("list")
@click.pass_obj
def list_users(settings: CoordinatorSettings) -> None:
    """Every user: id, e-mail, name, role, status, created (tab-separated)."""
    for user in _on_store(settings, "list", lambda store: store.list_users()):
        role = "instance admin" if user.instance_admin else "user"
        state = "active" if user.active else "disabled"
        made = user.inserted_at.isoformat(timespec="seconds")
        click.echo(f"{user.id}\t{user.email}\t{user.name}\t{role}\t{state}\t{made}")


@users.command("disable")
@click.argument("email")
@click.pass_obj
def disable(settings: CoordinatorSettings, email: str) -> None:
    """Disable a user: their sessions end now, their API tokens are refused."""

    async def change(store: Store) -> User:
        return await _set_disabled(store, email, True)

    click.echo(f"disabled {_on_store(settings, 'disable', change).email}")


@users.command("enable")
@click.argument("email")
@click.pass_obj
def enable(settings: CoordinatorSettings, email: str) -> None:
    """Let a disabled user sign in again."""

    async def change(store: Store) -> User:
        return await _set_disabled(store, email, False)

    click.echo(f"enabled {_on_store(settings, 'enable', change).email}")


@users.command("set-password")
@click.argument("email")
@password_stdin
@click.pass_obj
def set_password(settings: CoordinatorSettings, email: str, password_stdin: bool) -> None:
    """Give a user a new password; their sessions end."""
    password = _password(password_stdin)

    async def change(store: Store) -> User:
        user = await _find(store, email)
        hashed = await hash_password(password)
        async with store.together():
            await store.set_password(user.id, hashed)
            await _record(store, "user.password_changed", user)
        return user

    user = _on_store(settings, "set-password", change)
    click.echo(f"password of {user.email} set; their sessions ended")


def _password(from_stdin: bool) -> str:
    """The password, typed twice at a prompt (not echoed), or stdin's first line."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("users", "--password-stdin: standard input has no password line")
        return line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt="Again"))


async def _set_disabled(store: Store, email: str, disabled: bool) -> User:
    before = await _find(store, email)
    async with store.together():
        user = await store.set_user_disabled(before.id, disabled)
        if user != before:
            after = audit.user_document(user)
            await _record(
                store, "user.updated", user, before=audit.user_document(before), after=after
            )
    return user


async def _record(
    store: Store,
    action: str,
    user: User,
    *,
    before: audit.Document | None = None,
    after: audit.Document | None = None,
) -> None:
    """The audit trail's record of a change made here, by the host's user (audit.command_line)."""
    target = Target("user", user.id, user.email)
    await audit.record(store, audit.command_line(), action, target, before=before, after=after)


async def _find(store: Store, email: str) -> User:
    user = await store.find_user(email)
    if user is None:
        raise CliError("users", f"no user has the e-mail address {email.strip()!r}")
    return user


def _on_store(
    settings: CoordinatorSettings,
    command: str,
    work: Callable[[Store], Awaitable[T]],
    *,
    new_store: bool = False,
) -> T:
    """``work`` done on the coordinator's store (server.local_store: a SQLite file that is
    not there is refused, or with ``new_store`` made and said so); a refusal is one line
    (exit status 2)."""
    url = local_store(settings, f"users {command}", make=new_store)

    async def opened() -> T:
        async with await open_store(url) as store:
            return await work(store)

    try:
        return run_async(opened())
    except FulmenError as exc:
        raise CliError("users", exc.message) from exc
