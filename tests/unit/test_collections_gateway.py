"""The collections gateway's decisions: which paths it forwards, where to (issue 19)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from fulmen.adaptors.collections import CollectionsError, _Items
from fulmen.config import WorkerSettings
from fulmen.errors import ConfigError
from fulmen.worker import prepare
from fulmen.worker.collections_gateway import collections_url, route


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/collections/patients", "/patients"),
        ("/collections/patients?key=p-*&limit=10", "/patients?key=p-*&limit=10"),
        ("/collections/patients/p-1", "/patients/p-1"),
        ("/collections/patients/a/b", "/patients/a/b"),
        ("/collections/patients/a%2Fb", "/patients/a%2Fb"),
    ],
)
def test_collections_paths_are_forwarded(target: str, forwarded: str) -> None:
    assert route("GET", target) == (forwarded, None)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/api/runs", 404),
        ("GET", "/collections", 404),
        ("GET", "/collectionsx/a", 404),
        ("GET", "/worker/websocket", 404),
        ("GET", "/collections/../api/runs", 400),
        ("GET", "/collections/%2e%2e/api/runs", 400),
        ("GET", "/collections/a%2F..%2F..%2Fapi/runs", 400),
        ("GET", "/collections/a/../../api/runs", 400),
        ("GET", "/collections/a/%2e%2e/%2e%2e/api", 400),
        ("GET", "/collections/a//b", 400),
        ("GET", "/collections/a/b%00", 400),
        ("GET", "/collections/a\\b", 400),
        ("PATCH", "/collections/a/b", 405),
        ("CONNECT", "/collections/a", 405),
    ],
)
def test_anything_else_is_refused(method: str, target: str, status: int) -> None:
    _, refusal = route(method, target)
    assert refusal is not None and refusal.status == status
    assert json.loads(refusal.body())["code"]


def test_the_coordinators_collections_url_follows_the_socket_url() -> None:
    assert collections_url(None, "ws://127.0.0.1:4000/worker") == (
        "http://127.0.0.1:4000/collections"
    )
    assert collections_url(None, "wss://app.example.org/worker") == (
        "https://app.example.org/collections"
    )
    assert collections_url(None, "ws://h:1/base/worker") == "http://h:1/base/collections"
    assert collections_url("https://c.example.org/collections/", "ws://x/worker") == (
        "https://c.example.org/collections"
    )


async def _chunks(text: str, size: int) -> AsyncIterator[str]:
    for at in range(0, len(text), size):
        yield text[at : at + size]


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_a_streamed_answer_is_read_item_by_item_whatever_its_chunks(size: int) -> None:
    items = [{"key": f"k{i}", "value": json.dumps({"n": i, "s": "a, ]}"})} for i in range(5)]
    text = json.dumps({"items": items, "cursor": "MjAyNg=="}, indent=1)

    async def read() -> tuple[list[dict[str, str]], str | None]:
        reader = _Items(_chunks(text, size))
        return [item async for item in reader], reader.cursor

    assert asyncio.run(read()) == (items, "MjAyNg==")


def test_an_empty_page_and_a_null_cursor() -> None:
    async def read() -> tuple[list[dict[str, str]], str | None]:
        reader = _Items(_chunks('{"items": [], "cursor": null}', 4))
        return [item async for item in reader], reader.cursor

    assert asyncio.run(read()) == ([], None)


def test_a_cut_answer_is_an_error() -> None:
    async def read() -> None:
        async for _ in _Items(_chunks('{"items": [{"key": "a", "val', 4)):
            pass

    with pytest.raises(CollectionsError, match="ended early"):
        asyncio.run(read())


def test_a_collections_url_that_is_not_http_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="WORKER_COLLECTIONS_URL must be an http"):
        WorkerSettings.from_env({"WORKER_COLLECTIONS_URL": "ftp://coordinator/collections"})
    flagged = dataclasses.replace(WorkerSettings(), collections_url="coordinator:4000")
    with pytest.raises(ConfigError, match="--collections-url"):
        prepare(flagged)
