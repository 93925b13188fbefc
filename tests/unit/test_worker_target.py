"""worker.target: the socket URL the worker opens, the base URLs it accepts (one, or several
replicas: issue 14), and the order it tries addresses in (spec §1.1, §10.6). The connection
itself is exercised over real sockets in ``tests/integration/test_worker_reconnect.py`` and
``test_worker_failover.py``."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from fulmen.errors import ConfigError
from fulmen.worker.target import (
    Endpoint,
    Target,
    endpoints_of,
    failover_order,
    parse_target,
    parse_targets,
    resolve,
    socket_url,
)

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


# -- several coordinators (issue 14) ---------------------------------------------------------

A = parse_target("ws://coordinator-a:4000/worker")
B = parse_target("ws://coordinator-b:4000/worker")
V4, V6 = socket.AF_INET, socket.AF_INET6


def test_one_url_is_one_target_as_before() -> None:
    assert parse_targets("ws://localhost:4000/worker") == (
        parse_target("ws://localhost:4000/worker"),
    )


@pytest.mark.parametrize(
    "text",
    [
        "ws://coordinator-a:4000/worker,ws://coordinator-b:4000/worker",
        " ws://coordinator-a:4000/worker , ws://coordinator-b:4000/worker ,",
        "ws://coordinator-a:4000/worker,ws://coordinator-b:4000/worker,"
        "ws://coordinator-a:4000/worker",
    ],
)
def test_several_urls_are_separated_by_commas(text: str) -> None:
    assert parse_targets(text) == (A, B)


@pytest.mark.parametrize("text", ["ws://a:1/worker,http://b:2/worker", "", " , "])
def test_each_of_several_urls_is_checked(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_targets(text)
    assert error.value.code == "bad_url"
    assert error.value.message.startswith("WORKER_LIGHTNING_SERVICE_URL must be a ws://")


def endpoints(*pairs: tuple[Target, int, str]) -> list[Endpoint]:
    return [Endpoint(target, family, ip) for target, family, ip in pairs]


def test_an_address_reached_through_two_urls_is_one_endpoint() -> None:
    same_host = parse_target("ws://127.0.0.1:4000/worker")
    found = endpoints_of([(A, [(V4, "127.0.0.1")]), (same_host, [(V4, "127.0.0.1")])])
    assert found == [Endpoint(A, V4, "127.0.0.1")]


def test_ipv4_is_tried_before_ipv6_whatever_the_salt() -> None:
    """§10.6: ``localhost`` as ``::1`` and ``127.0.0.1`` is one coordinator, most often on
    IPv4 only: its IPv6 address is a fallback, never where a worker starts."""
    local = endpoints((A, V6, "::1"), (A, V4, "127.0.0.1"))
    for salt in map(str, range(50)):
        assert [e.ip for e in failover_order(local, salt=salt)] == ["127.0.0.1", "::1"]


def test_workers_spread_over_the_replicas() -> None:
    """Each worker (salt) has its own order, so that workers given the same URLs do not all
    start on the first: over 30 workers, each of three replicas comes first for some."""
    three = endpoints((A, V4, "10.0.0.1"), (A, V4, "10.0.0.2"), (B, V4, "10.0.0.3"))
    firsts = {failover_order(three, salt=f"fulmen-{n}")[0].ip for n in range(30)}
    assert firsts == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}


def test_a_workers_order_does_not_depend_on_the_resolvers() -> None:
    """DNS round robin answers in a new order each time; the worker's stays the same."""
    three = endpoints((A, V4, "10.0.0.1"), (A, V4, "10.0.0.2"), (A, V4, "10.0.0.3"))
    assert failover_order(three, salt="w") == failover_order(three[::-1], salt="w")


def test_after_a_connection_the_next_replica_comes_first() -> None:
    three = endpoints((A, V4, "10.0.0.1"), (A, V4, "10.0.0.2"), (B, V4, "10.0.0.3"), (B, V6, "::3"))
    order = failover_order(three, salt="w")
    for i, last in enumerate(order[:3]):
        after = failover_order(three, salt="w", after=last)
        assert after[:3] == order[i + 1 : 3] + order[: i + 1]  # the last one tried last
        assert after[3].ip == "::3"  # IPv6 still after every IPv4 address
