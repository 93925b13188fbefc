"""worker.target: the socket URL the worker opens, the base URLs it accepts, and the order it
tries addresses in (spec §1.1, §10.6). The connection itself is exercised over real sockets
in ``tests/integration/test_worker_reconnect.py``."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from fulmen.errors import ConfigError
from fulmen.worker.target import parse_target, resolve, socket_url

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "phoenix" / "capture.jsonl"


def recorded_connect_path() -> str:
    for line in FIXTURE.read_text().splitlines():
        record = json.loads(line)
        if record["dir"] == "CONNECT":
            return str(record["info"])
    raise AssertionError("no CONNECT line in the capture")


def test_the_socket_url_is_built_as_ws_worker_builds_it() -> None:
    recorded = urlsplit(recorded_connect_path())
    target = parse_target("ws://localhost:8888/worker")
    ours = urlsplit(socket_url(target, "TOKEN", "1.25.0"))
    assert ours.path == recorded.path == "/worker/websocket"
    assert [k for k, _ in parse_qsl(ours.query)] == [k for k, _ in parse_qsl(recorded.query)]
    assert dict(parse_qsl(ours.query)) == {
        "token": "TOKEN",
        "api_version": "1.2",
        "worker_version": "1.25.0",
        "vsn": "2.0.0",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://localhost:4000/worker", ("localhost", 4000, False, "/worker")),
        ("wss://lightning.example.org/worker/", ("lightning.example.org", 443, True, "/worker")),
        ("ws://[::1]:4000/worker", ("::1", 4000, False, "/worker")),
        ("ws://127.0.0.1/worker", ("127.0.0.1", 80, False, "/worker")),
    ],
)
def test_base_urls(url: str, expected: tuple[str, int, bool, str]) -> None:
    target = parse_target(url)
    assert (target.host, target.port, target.secure, target.path) == expected
    assert socket_url(target, "t", "v").split("?")[0] == url.rstrip("/") + "/websocket"


@pytest.mark.parametrize(
    "url", ["http://localhost:4000/worker", "localhost:4000", "ws://", "ws://h:x"]
)
def test_a_bad_url_names_the_variable(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_target(url)
    assert error.value.code == "bad_url"
    assert error.value.message.startswith("WORKER_LIGHTNING_SERVICE_URL must be a ws://")


def test_addresses_are_ipv4_first_and_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 4000, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 4000)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 4000, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 4000)),
    ]

    async def fake_getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        return answer  # type: ignore[return-value]

    async def main() -> list[tuple[int, str]]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
        return await resolve("localhost", 4000)

    assert asyncio.run(main()) == [
        (socket.AF_INET, "127.0.0.1"),
        (socket.AF_INET, "10.0.0.1"),
        (socket.AF_INET6, "::1"),
    ]
