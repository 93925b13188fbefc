"""The worker's collections gateway on a real socket (issue 19): a run's token opens it until
the run ends, and nothing else does (what it forwards, and to whom, is
tests/acceptance/test_e2e_collections.py's, with a real coordinator)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import h11
import httpx2
import pytest

from fulmen.worker.collections_gateway import (
    MAX_CONNECTIONS,
    MAX_PER_RUN,
    NETWORK_NONE,
    CollectionsGateway,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_run_s_token_opens_the_gateway_until_it_is_revoked() -> None:
    async def main() -> list[tuple[int, str]]:
        nowhere = f"http://127.0.0.1:{closed_port()}/collections"
        async with CollectionsGateway() as gateway, httpx2.AsyncClient() as client:
            gateway.upstream = lambda: nowhere
            settings, token = gateway.settings_for("the.run.token", "outside")
            assert token is not None
            assert settings == {
                "collections_endpoint": f"http://127.0.0.1:{gateway.port}/collections",
                "collections_token": token,
            }
            url = f"{settings['collections_endpoint']}/things/k1"
            seen = []
            for bearer in (token, "made-up", token):
                if bearer == token and seen:
                    gateway.revoke(token)
                answer = await client.get(url, headers={"Authorization": f"Bearer {bearer}"})
                seen.append((answer.status_code, answer.json()["code"]))
            return seen

    # Let through (the coordinator behind is not there: 502), refused, refused once revoked.
    assert asyncio.run(main()) == [
        (502, "bad_gateway"),
        (401, "unauthorized"),
        (401, "unauthorized"),
    ]


def test_under_the_network_policy_none_a_run_gets_the_reason_and_no_token() -> None:
    async def main() -> tuple[dict[str, str], str | None]:
        async with CollectionsGateway() as gateway:
            return gateway.settings_for("the.run.token", "none")

    assert asyncio.run(main()) == ({"collections_unavailable": NETWORK_NONE}, None)


class Upstream:
    """A coordinator's stand-in behind the gateway: records what reaches it, and answers each
    request once ``release`` is set (so that requests can be held in flight)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/collections"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert request is not None
        headers = {k.decode(): v.decode() for k, v in request.headers}
        self.seen.append((request.method.decode(), request.target.decode(), headers, body))
        self.arrived.set()
        await self.release.wait()
        answer = b'{"upserted": 1, "error": null}'
        writer.write(
            http.send(h11.Response(status_code=200, headers=[("Content-Length", str(len(answer)))]))
            + http.send(h11.Data(data=answer))
            + http.send(h11.EndOfMessage())
        )
        await writer.drain()
        writer.close()


async def raw(port: int, request: bytes) -> bytes:
    """What the gateway answers ``request`` sent as it is, read to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_a_chunked_body_reaches_the_coordinator_whole_with_the_run_token() -> None:
    async def main() -> tuple[int, list[tuple[str, str, dict[str, str], bytes]]]:
        async with Upstream() as upstream, CollectionsGateway() as gateway:
            gateway.upstream = lambda: upstream.url
            _, token = gateway.settings_for("the.run.token", "outside")

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"items": [{"key": "a", '
                yield b'"value": "1"}]}'

            async with httpx2.AsyncClient() as client:
                answer = await client.post(
                    f"{gateway.endpoint}/things",
                    content=chunks(),
                    headers={"Authorization": f"Bearer {token}", "Cookie": "x=1"},
                )
            return answer.status_code, upstream.seen

    status, seen = asyncio.run(main())
    assert status == 200
    [(method, target, headers, body)] = seen
    assert (method, target, body) == (
        "POST",
        "/collections/things",
        b'{"items": [{"key": "a", "value": "1"}]}',
    )
    assert headers["authorization"] == "Bearer the.run.token"
    assert "cookie" not in headers


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        # request smuggling: two framings at once
        (
            b"POST /collections/things HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {token}\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/runs",
            400,
        ),
        (
            b"POST /collections/things HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {token}\r\n"
            b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
            400,
        ),
        (b"GET /collections/things HTTP/1.1\r\nHost: g\r\nX: " + b"y" * 100_000 + b"\r\n\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
)
def test_requests_http_does_not_allow_are_refused_before_anything_is_forwarded(
    request_: bytes, status: int
) -> None:
    async def main() -> tuple[bytes, int]:
        async with Upstream() as upstream, CollectionsGateway() as gateway:
            gateway.upstream = lambda: upstream.url
            _, token = gateway.settings_for("the.run.token", "outside")
            assert token is not None
            answer = await raw(gateway.port, request_.replace(b"{token}", token.encode()))
            return answer, len(upstream.seen)

    answer, forwarded = asyncio.run(main())
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]
    assert forwarded == 0


def test_a_run_has_a_bounded_number_of_requests_in_flight() -> None:
    async def main() -> tuple[list[int], int]:
        async with Upstream() as upstream, CollectionsGateway() as gateway:
            gateway.upstream = lambda: upstream.url
            upstream.release.clear()
            _, token = gateway.settings_for("the.run.token", "outside")
            _, other = gateway.settings_for("another.run.token", "outside")
            async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=100)) as client:

                async def get(bearer: str | None) -> int:
                    answer = await client.get(
                        f"{gateway.endpoint}/things/k",
                        headers={"Authorization": f"Bearer {bearer}"},
                    )
                    return answer.status_code

                held = [asyncio.create_task(get(token)) for _ in range(MAX_PER_RUN)]
                while len(upstream.seen) < MAX_PER_RUN:
                    upstream.arrived.clear()
                    await upstream.arrived.wait()
                over = await get(token)
                upstream.release.set()
                others = await get(other)
                return [over, others, *await asyncio.gather(*held)], len(upstream.seen)

    statuses, forwarded = asyncio.run(main())
    assert statuses == [429, 200, *[200] * MAX_PER_RUN]
    assert forwarded == MAX_PER_RUN + 1


def test_connections_beyond_the_bound_are_answered_busy_and_the_gateway_goes_on() -> None:
    async def main() -> tuple[bytes, int]:
        async with Upstream() as upstream, CollectionsGateway() as gateway:
            gateway.upstream = lambda: upstream.url
            _, token = gateway.settings_for("the.run.token", "outside")
            # Job code opening connections and saying nothing on them.
            silent = [
                await asyncio.open_connection("127.0.0.1", gateway.port)
                for _ in range(MAX_CONNECTIONS)
            ]
            busy = await raw(gateway.port, b"")
            for _, writer in silent:
                writer.close()
                await writer.wait_closed()
            async with httpx2.AsyncClient() as client:
                while True:  # the gateway sees the silent ones go as it reads them
                    answer = await client.get(
                        f"{gateway.endpoint}/things/k", headers={"Authorization": f"Bearer {token}"}
                    )
                    if answer.status_code != 503:
                        return busy, answer.status_code
                    await asyncio.sleep(0)

    busy, after = asyncio.run(main())
    assert busy.startswith(b"HTTP/1.1 503 ") and b'"code": "busy"' in busy
    assert after == 200
