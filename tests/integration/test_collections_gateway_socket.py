"""The worker's collections gateway on a real socket (issue 19): a run's token opens it until
the run ends, and nothing else does (what it forwards, and to whom, is
tests/acceptance/test_e2e_collections.py's, with a real coordinator)."""

from __future__ import annotations

import asyncio
import socket

import httpx2

from fulmen.worker.collections_gateway import NETWORK_NONE, CollectionsGateway


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


def test_a_body_without_a_length_is_refused() -> None:
    async def main() -> tuple[int, str]:
        async with CollectionsGateway() as gateway, httpx2.AsyncClient() as client:
            _, token = gateway.settings_for("the.run.token", "outside")

            async def chunks():  # type: ignore[no-untyped-def]
                yield b'{"items": []}'

            answer = await client.post(
                f"{gateway.endpoint}/things",
                content=chunks(),
                headers={"Authorization": f"Bearer {token}"},
            )
            return answer.status_code, answer.json()["code"]

    assert asyncio.run(main()) == (411, "length_required")
