"""The runner's management API needs its bearer token by default (issue 13): the token the
first start made, or ``--api-token-file``'s; ``--no-auth`` only on loopback. Driven over real
HTTP on loopback, including from inside a smart worker, the attacker the issue describes."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.config import RunnerSettings, SandboxSettings
from fulmen.errors import ConfigError
from fulmen.runner.auth import ApiAuth
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import ECHO, INTRUDER, KEYS

pytestmark = pytest.mark.timeout(60)

MANAGEMENT = [
    ("POST", "/workers"),
    ("POST", "/"),
    ("GET", "/workers"),
    ("GET", "/workers/victim"),
    ("GET", "/workers/victim/logs"),
    ("GET", "/workers/victim/runs"),
    ("POST", "/workers/victim/run"),
    ("POST", "/workers/victim/restart"),
    ("DELETE", "/workers/victim?purge_key=1"),
    ("POST", "/events/t"),
    ("POST", "/identities"),
    ("GET", "/identities/someone"),
    ("PUT", "/identities/someone"),
]


def test_every_management_route_needs_the_token_the_first_start_made(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        async with served(state) as s:
            token_file = state / "api-token"
            assert s.auth.path == str(token_file)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            assert len(token_file.read_text().strip()) >= 40
            victim = await s.create(ECHO, name="victim", events=["t"])
            async with httpx2.AsyncClient(base_url=s.url, timeout=30) as anonymous:
                for method, path in MANAGEMENT:
                    for headers in ({}, {"authorization": "Bearer wrong"}):
                        reply = await anonymous.request(method, path, json={}, headers=headers)
                        _assert_refused(reply, token_file, f"{method} {path}")
                # The worker's own HTTP trigger and the liveness check stay open.
                assert (await anonymous.get("/workers/victim/fetch/x")).status_code == 200
                assert (await anonymous.get("/healthz")).status_code == 200
            after = (await s.http.get("/workers/victim")).json()
            assert after["state"] == "ready" and after["pid"] == victim["pid"]
            assert (await s.http.get("/workers/victim/runs")).json()[0]["trigger"] == "create"
        # A second start keeps the token: clients holding it go on working.
        first = token_file.read_text()
        async with served(state) as again:
            assert token_file.read_text() == first
            assert (await again.http.get("/workers")).status_code == 200

    asyncio.run(main())


def _assert_refused(reply: httpx2.Response, token_file: Path, what: str) -> None:
    assert reply.status_code == 401, (what, reply.text)
    body = reply.json()
    assert body["code"] == "unauthorized", what
    assert "Authorization: Bearer <token>" in body["error"], body
    assert str(token_file) in body["error"], body
    assert reply.headers["www-authenticate"].startswith("Bearer"), what


def test_a_smart_worker_that_reaches_the_api_cannot_use_it(tmp_path: Path) -> None:
    """The attack of issue 13: a worker whose network reaches the runner's port lists the
    workers, reads another's logs and deletes it with its key. Here its network is the
    host's, so every request arrives; none is served."""

    async def main() -> None:
        sandbox = SandboxSettings(network="host")
        async with served(tmp_path / "state", sandbox=sandbox) as s:
            await s.create(KEYS, name="victim")
            bits = await _bits(s)
            await s.create(INTRUDER, name="intruder")
            attack = [
                ["GET", f"{s.url}/workers"],
                ["GET", f"{s.url}/workers/victim/logs"],
                ["DELETE", f"{s.url}/workers/victim?purge_key=1"],
                ["POST", f"{s.url}/workers/victim/restart"],
                ["GET", f"{s.url}/healthz"],  # the control: the API is reachable
            ]
            reply = await s.http.post("/workers/intruder/fetch", json=attack)
            assert reply.status_code == 200, reply.text
            answers = reply.json()
            assert answers[-1][0] == 200
            for status, body in answers[:-1]:
                assert status == 401 and json.loads(body)["code"] == "unauthorized", body
            assert (await s.http.get("/workers/victim")).json()["state"] == "ready"
            assert await _bits(s) == bits  # the victim's omni key is untouched

    asyncio.run(main())


async def _bits(s: Served) -> Any:
    reply = await s.http.post("/workers/victim/fetch", json={})
    assert reply.status_code == 200, reply.text
    return reply.json()["bits"]


def test_an_api_token_file_chooses_another_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o600)

    async def main() -> None:
        async with served(tmp_path / "state", api_token_file=str(token)) as s:
            assert not (tmp_path / "state" / "api-token").exists()
            made = await s.create(ECHO, name="open")
            assert made["state"] == "ready"
            async with httpx2.AsyncClient(base_url=s.url, timeout=30) as other:
                wrong = await other.get("/workers")
                _assert_refused(wrong, token, "GET /workers")
                right = await other.get("/workers", headers={"authorization": "Bearer s3cret"})
                assert [w["name"] for w in right.json()] == ["open"]

    asyncio.run(main())


def test_no_auth_is_for_a_loopback_listener_only(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "192.0.2.1", "::", "example.org"):
        with pytest.raises(ConfigError, match="only for a loopback listener"):
            ApiAuth.from_settings(RunnerSettings(host=host, no_auth=True))
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert ApiAuth.from_settings(RunnerSettings(host=host, no_auth=True)).token is None

    async def main() -> None:
        async with served(tmp_path / "state", no_auth=True) as s:
            assert "authorization" not in s.http.headers
            assert not (tmp_path / "state" / "api-token").exists()
            await s.create(ECHO, name="open")
            assert (await s.http.get("/workers/open")).status_code == 200

    asyncio.run(main())


def test_an_unusable_token_file_stops_start_up(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_text("t\n")
    loose.chmod(0o644)
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    cases = {loose: "make it 0600", empty: "is empty", tmp_path / "absent": "No such file"}
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            ApiAuth.from_settings(RunnerSettings(api_token_file=str(path)))
