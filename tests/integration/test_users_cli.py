"""``fulmen users`` on a coordinator's data directory (click's runner, the real SQLite store):
users made with a password typed twice or read from standard input, never from an argument;
listed; disabled and enabled (never the last admin); a new password ends the user's
sessions; the first admin takes over the tokens made before; refusals are one line; each
change is in the audit trail, by the host's user."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen.coordinator.passwords import check
from fulmen.store import AuditFilter, AuditRecord, NewUser, SessionLimits, User, open_store

PASSWORD = "correct horse battery"
LIMITS = SessionLimits(idle=timedelta(hours=1), absolute=timedelta(days=1))


class Fulmen:
    """``fulmen`` with ``FULMEN_DATA_DIR`` set to a test's directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = f"sqlite:///{data_dir / 'fulmen.db'}"

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {"FULMEN_DATA_DIR": str(self.data_dir), "FULMEN_DATABASE_URL": ""}
        return CliRunner().invoke(cli, list(args), input=input, env=env)

    def user(self, email: str) -> User | None:
        async def find() -> User | None:
            async with await open_store(self.url) as store:
                return await store.find_user(email)

        return asyncio.run(find())


@pytest.fixture
def fulmen(tmp_path: Path) -> Iterator[Fulmen]:
    yield Fulmen(tmp_path)


def test_a_user_is_made_with_a_password_typed_twice(fulmen: Fulmen) -> None:
    made = fulmen("users", "create", "Ada@Example.org", "--name", "Ada", input=f"{PASSWORD}\n" * 2)
    assert made.exit_code == 0, made.output
    assert "created user ada@example.org (" in made.output
    assert PASSWORD not in made.output  # not echoed
    ada = fulmen.user("ada@example.org")
    assert ada is not None and ada.name == "Ada" and not ada.instance_admin
    assert asyncio.run(check(ada.password_hash, PASSWORD)).ok

    differ = fulmen("users", "create", "bob@example.org", input=f"{PASSWORD}\nother one\n")
    assert differ.exit_code != 0 and "do not match" in differ.output
    assert fulmen.user("bob@example.org") is None


def test_a_password_from_stdin_and_never_from_an_argument(fulmen: Fulmen) -> None:
    made = fulmen("users", "create", "ops@localhost", "--admin", "--password-stdin", input=PASSWORD)
    assert made.exit_code == 0, made.output
    assert "created instance admin ops@localhost" in made.output
    admin = fulmen.user("ops@localhost")
    assert admin is not None and admin.instance_admin

    argument = fulmen("users", "create", "eve@example.org", "--password", PASSWORD)
    assert argument.exit_code == 2 and "No such option" in argument.output
    empty = fulmen("users", "create", "eve@example.org", "--password-stdin", input="")
    assert empty.exit_code == 2 and "no password line" in empty.output
    weak = fulmen("users", "create", "eve@example.org", "--password-stdin", input="short\n")
    assert weak.exit_code == 2
    assert weak.output.strip().startswith("fulmen users: a password needs at least 10")
    assert fulmen.user("eve@example.org") is None
    twice = fulmen("users", "create", "OPS@localhost", "--password-stdin", input=PASSWORD)
    assert twice.exit_code == 2 and "exists" in twice.output
    bad = fulmen("users", "create", "not-an-address", "--password-stdin", input=PASSWORD)
    assert bad.exit_code == 2 and "is not an e-mail address" in bad.output


def test_users_are_listed_disabled_and_enabled_but_never_the_last_admin(fulmen: Fulmen) -> None:
    for args in (("admin@example.org", "--admin"), ("ada@example.org",)):
        assert fulmen("users", "create", *args, "--password-stdin", input=PASSWORD).exit_code == 0
    assert fulmen("users", "disable", "ADA@example.org").output == "disabled ada@example.org\n"
    listed = fulmen("users", "list").output.splitlines()
    rows = [line.split("\t") for line in listed]
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("ada@example.org", "user", "disabled"),
        ("admin@example.org", "instance admin", "active"),
    ]
    assert fulmen("users", "enable", "ada@example.org").exit_code == 0
    assert "\tactive\t" in fulmen("users", "list").output.splitlines()[0]

    last = fulmen("users", "disable", "admin@example.org")
    assert last.exit_code == 2
    assert "last active instance admin" in last.output and "Traceback" not in last.output
    nobody = fulmen("users", "disable", "nobody@example.org")
    assert nobody.exit_code == 2 and "no user has the e-mail address" in nobody.output


def test_a_new_password_ends_the_users_sessions(fulmen: Fulmen) -> None:
    fulmen("users", "create", "ada@example.org", "--password-stdin", input=PASSWORD)
    ada = fulmen.user("ada@example.org")
    assert ada is not None

    async def open_session() -> None:
        async with await open_store(fulmen.url) as store:
            await store.open_dashboard_session("d1", LIMITS, user_id=ada.id)

    asyncio.run(open_session())
    new = "a brand new password"
    changed = fulmen("users", "set-password", "ada@example.org", input=f"{new}\n{new}\n")
    assert changed.exit_code == 0 and "their sessions ended" in changed.output

    async def session_left() -> bool:
        async with await open_store(fulmen.url) as store:
            return await store.resume_dashboard_session("d1", LIMITS) is not None

    assert not asyncio.run(session_left())
    again = fulmen.user("ada@example.org")
    assert again is not None and asyncio.run(check(again.password_hash, new)).ok


def test_the_first_admin_takes_over_the_tokens_made_before(fulmen: Fulmen) -> None:
    token = fulmen("server", "token", "create", "--name", "early")
    assert token.exit_code == 0, token.output
    fulmen("users", "create", "admin@example.org", "--admin", "--password-stdin", input=PASSWORD)
    admin = fulmen.user("admin@example.org")

    async def owners() -> list[str | None]:
        async with await open_store(fulmen.url) as store:
            await store.create_user(NewUser("later@example.org"))
            return [t.user_id for t in await store.list_api_tokens()]

    assert admin is not None and asyncio.run(owners()) == [admin.id]


def test_each_change_is_in_the_audit_trail_as_the_hosts_user(fulmen: Fulmen) -> None:
    fulmen("users", "create", "admin@example.org", "--admin", "--password-stdin", input=PASSWORD)
    fulmen("users", "create", "ada@example.org", "--password-stdin", input=PASSWORD)
    fulmen("users", "disable", "ada@example.org")
    fulmen("users", "set-password", "ada@example.org", "--password-stdin", input=PASSWORD + "!")

    async def trail() -> list[AuditRecord]:
        async with await open_store(fulmen.url) as store:
            return (await store.list_audit(AuditFilter(action="user"))).items[::-1]

    records = asyncio.run(trail())
    assert [(r.action, r.target.name) for r in records] == [
        ("user.created", "admin@example.org"),
        ("user.created", "ada@example.org"),
        ("user.updated", "ada@example.org"),
        ("user.password_changed", "ada@example.org"),
    ]
    assert {(r.actor.kind, r.actor.name) for r in records} == {("cli", getpass.getuser())}
    assert PASSWORD not in repr(records)
