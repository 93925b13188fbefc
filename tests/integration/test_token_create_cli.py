"""``fulmen server token create`` (issue 18): ``--user EMAIL`` makes that user's personal token,
``--project ID --role ROLE`` a project's service token, and neither an operator token, which
acts as an instance admin: said on stderr once users exist, stdout holding the token alone
(scripts read it). Each acts as it should on the REST API."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner, Result

from fulmen import keys as keyring
from fulmen.cli import cli
from fulmen.config import CoordinatorSettings
from fulmen.coordinator.api.auth import parse
from fulmen.coordinator.core import database_url
from fulmen.store import NewUser, Project, SQLStore, open_store
from fulmen_testing.coordinator import serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    env: dict[str, str]
    store: SQLStore
    http: httpx2.AsyncClient

    async def fulmen(self, *args: str) -> Result:
        """``fulmen server token create <args>`` (in a thread: the CLI blocks)."""
        command = ["server", "token", "create", *args]
        return await asyncio.to_thread(CliRunner().invoke, cli, command, env=self.env)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    keys = keyring.generate()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "FULMEN_"))}
    env |= {
        "WORKER_SECRET": keys.worker_secret,
        "WORKER_RUNS_PRIVATE_KEY": keys.private_key,
        "FULMEN_DATA_DIR": str(tmp_path / "data"),
    }
    first = await asyncio.to_thread(
        CliRunner().invoke, cli, ["server", "token", "create", "--name", "before users"], env=env
    )
    assert first.exit_code == 0, first.output
    # no users yet: an operator token is what there is, said of nothing but the new store
    [made] = first.stderr.splitlines()
    assert made.startswith(f"fulmen server token create: no store at {tmp_path / 'data'}")
    url = database_url(CoordinatorSettings.from_env(env))
    async with (
        await open_store(url) as store,
        serve(store) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        yield Site(env, store, http)


def _bearer(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


async def test_a_users_token_and_a_projects_token(site: Site) -> None:
    ada = await site.store.create_user(NewUser("ada@example.org"))
    await site.store.create_project(Project("p1", "P1"), owner_id=ada.id)
    await site.store.create_project(Project("p2", "P2"))

    personal = await site.fulmen("--name", "ada's script", "--user", "ADA@example.org")
    headers = _bearer(personal)
    listed = (await site.http.get("/api/projects", headers=headers)).json()["items"]
    assert [p["id"] for p in listed] == ["p1"]
    token_id = parse(personal.stdout.strip())
    assert token_id is not None
    assert (await site.store.get_api_token(token_id[0])).user_id == ada.id

    service = await site.fulmen("--name", "ci", "--project", "p2", "--role", "viewer")
    headers = _bearer(service)
    assert (await site.http.get("/api/projects/p2", headers=headers)).status_code == 200
    refused = await site.http.put("/api/projects/p2", json={"name": "x"}, headers=headers)
    assert refused.status_code == 403
    assert (await site.http.get("/api/projects/p1", headers=headers)).status_code == 404


async def test_an_operator_token_once_users_exist_says_what_it_is(site: Site) -> None:
    await site.store.create_user(NewUser("ada@example.org"))
    made = await site.fulmen("--name", "ops")
    assert "acts as an instance admin" in made.stderr
    assert made.stdout.strip().startswith("fmn_") and "\n" not in made.stdout.strip()
    listed = await site.http.get("/api/projects", headers=_bearer(made))
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--user", "nobody@example.org"], "no user has the e-mail nobody@example.org"),
        (["--project", "p1"], "a service token takes both --project and --role"),
        (["--role", "admin"], "a service token takes both --project and --role"),
        (["--project", "nope", "--role", "viewer"], "project nope does not exist"),
        (["--user", "a@example.org", "--project", "p1", "--role", "viewer"], "not both"),
        (["--project", "p1", "--role", "king"], "'king' is not one of"),
    ],
)
async def test_a_token_for_no_one_is_refused_in_one_line(
    site: Site, args: list[str], said: str
) -> None:
    await site.store.create_project(Project("p1", "P1"))
    before = len(await site.store.list_api_tokens())
    refused = await site.fulmen("--name", "x", *args)
    assert refused.exit_code != 0
    assert said in refused.output
    assert len(await site.store.list_api_tokens()) == before
