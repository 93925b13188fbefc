"""The dashboard's smart workers pages over HTTP (issue 17): a real coordinator that knows a
real runner (in-process, on loopback, with its API token) by URL and token file. What a user
notices: the list shows a worker's schedule and next time; run now makes a run whose logs then
show; restart and delete do what they say; no runner configured is a page that says how to
set one; a runner that does not answer is a 502 that says so; nothing happens without signing
in or from another site."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.coordinator import api_token, serve, sqlite_store
from fulmen_testing.runner.harness import Served as Runner
from fulmen_testing.runner.harness import served
from fulmen_testing.runner.scripts import ECHO

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Board:
    http: httpx2.AsyncClient
    token: str

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}

    async def sign_in(self) -> None:
        signed = await self.http.post("/ui/login", data={"token": self.token}, headers=self.origin)
        assert signed.status_code == 303, signed.text

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx2.Response:
        return await self.http.post(path, data=data or {}, headers=self.origin)


@dataclass
class World:
    board: Board
    runner: Runner


@contextlib.asynccontextmanager
async def board(tmp_path: Path, **runner_settings: Any) -> AsyncIterator[Board]:
    """A signed-in dashboard of a coordinator with ``runner_settings``."""
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, **runner_settings) as coordinator,
        httpx2.AsyncClient(base_url=coordinator.base_url) as http,
    ):
        signed = Board(http, await api_token(store))
        await signed.sign_in()
        yield signed


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with served(tmp_path / "runner") as runner:
        assert runner.auth.path is not None
        settings = {"runner_url": runner.url, "runner_token_file": runner.auth.path}
        async with board(tmp_path, **settings) as signed:
            yield World(signed, runner)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def row(html: str, worker_id: str) -> str:
    return html.split(f'<tr data-id="{worker_id}">')[1].split("</tr>")[0]


async def make(runner: Runner, name: str = "nightly") -> dict[str, Any]:
    return await runner.create(
        ECHO, name=name, type="module", schedule="*/5 * * * *", run_on_create=False
    )


async def test_the_list_shows_a_worker_with_its_triggers_and_next_time(world: World) -> None:
    made = await make(world.runner)
    page = await world.board.http.get("/ui/smart-workers")
    assert page.status_code == 200, page.text
    line = text_of(row(page.text, made["id"]))
    assert "nightly" in line and "module" in line
    assert "schedule */5 * * * * (UTC)" in line
    assert "HTTP" in line
    next_run = datetime.fromisoformat(made["next_run"]).astimezone(UTC)
    assert next_run.strftime("%Y-%m-%d %H:%M:%S UTC") in line
    assert "never" in line  # no run yet
    assert 'href="/ui/smart-workers"' in page.text  # the nav link

    one = await world.board.http.get(f"/ui/smart-workers/{made['id']}")
    assert one.status_code == 200
    text = text_of(one.text)
    assert "*/5 * * * * (UTC)" in text
    assert f"{world.runner.url}/workers/{made['id']}/fetch" in one.text
    assert "No runs yet." in text


async def test_run_now_makes_a_run_that_shows_with_its_logs(world: World) -> None:
    made = await make(world.runner)
    ran = await world.board.post(f"/ui/smart-workers/{made['id']}/run")
    assert ran.status_code == 303
    assert ran.headers["location"] == f"/ui/smart-workers/{made['id']}?done=ran"
    async with asyncio.timeout(30):
        while True:
            page = await world.board.http.get(ran.headers["location"])
            assert page.status_code == 200
            text = text_of(page.text)
            if "tasks ran" in text and "No runs yet." not in text:
                break
            await asyncio.sleep(0.1)
    assert "Run started" in text
    runs = text_of(page.text.split("smart-runs")[1].split("</table>")[0])
    assert "manual" in runs, runs
    listed = await world.board.http.get("/ui/smart-workers")
    assert "never" not in text_of(row(listed.text, made["id"]))


async def test_restart_and_delete(world: World) -> None:
    made = await make(world.runner)
    restarted = await world.board.post(f"/ui/smart-workers/{made['id']}/restart")
    assert restarted.status_code == 303
    assert restarted.headers["location"].endswith("?done=restarted")
    assert (await world.runner.http.get(f"/workers/{made['id']}")).status_code == 200

    unconfirmed = await world.board.post(f"/ui/smart-workers/{made['id']}/delete")
    assert unconfirmed.status_code == 400
    assert "Tick the box" in text_of(unconfirmed.text)
    assert (await world.runner.http.get(f"/workers/{made['id']}")).status_code == 200

    deleted = await world.board.post(f"/ui/smart-workers/{made['id']}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/ui/smart-workers?done=deleted"
    assert (await world.runner.http.get(f"/workers/{made['id']}")).status_code == 404
    page = await world.board.http.get(deleted.headers["location"])
    assert made["id"] not in page.text
    assert "Worker deleted." in text_of(page.text)
    gone = await world.board.http.get(f"/ui/smart-workers/{made['id']}")
    assert gone.status_code == 404


async def test_sign_in_and_same_origin_are_required(world: World) -> None:
    made = await make(world.runner)
    wid = made["id"]
    async with httpx2.AsyncClient(base_url=world.board.http.base_url) as stranger:
        for path in ("/ui/smart-workers", f"/ui/smart-workers/{wid}"):
            answer = await stranger.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/ui/login?next=")
        for action in ("run", "restart", "delete"):
            posted = await stranger.post(
                f"/ui/smart-workers/{wid}/{action}",
                data={"confirm": "yes"},
                headers=world.board.origin,
            )
            assert posted.status_code == 401
    for action in ("run", "restart", "delete"):
        posted = await world.board.http.post(
            f"/ui/smart-workers/{wid}/{action}",
            data={"confirm": "yes"},
            headers={"Origin": "https://evil.example"},
        )
        assert posted.status_code == 403
        assert "posted from another site" in text_of(posted.text)
    assert (await world.runner.http.get(f"/workers/{wid}/runs")).json() == []
    assert (await world.runner.http.get(f"/workers/{wid}")).status_code == 200


async def test_no_runner_configured_says_how_to_set_one(tmp_path: Path) -> None:
    async with board(tmp_path) as signed:
        page = await signed.http.get("/ui/smart-workers")
        assert page.status_code == 200
        text = text_of(page.text)
        assert "No runner configured" in text
        assert "FULMEN_RUNNER_URL" in text and "FULMEN_RUNNER_TOKEN_FILE" in text


async def test_an_unreachable_runner_is_a_502_that_says_so(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with board(tmp_path, runner_url=url) as signed:
        for answer in (
            await signed.http.get("/ui/smart-workers"),
            await signed.http.get("/ui/smart-workers/nightly"),
            await signed.post("/ui/smart-workers/nightly/run"),
        ):
            assert answer.status_code == 502
            assert f"The runner at {url} cannot be reached" in text_of(answer.text)


async def test_a_wrong_token_is_a_502_naming_the_token_file(world: World, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    async with board(
        tmp_path / "other", runner_url=world.runner.url, runner_token_file=str(wrong)
    ) as signed:
        page = await signed.http.get("/ui/smart-workers")
        assert page.status_code == 502
        assert f"refused the token in {wrong}" in text_of(page.text)
