"""A get of 100,000 items streams with flat memory (issue 19), on SQLite and PostgreSQL.

The coordinator serves in this process, so tracemalloc sees every Python allocation it makes
while a client (in this process too, keeping nothing but a count) reads the whole collection
in one response: the peak of what was allocated during the read must stay a small part of
the answer's size. A coordinator that built the answer, or read the collection, at once
would hold at least the answer's size.
"""

from __future__ import annotations

import tracemalloc

import httpx2
import pytest

from fulmen.store import CollectionLimits, Project, open_store
from fulmen_testing.coordinator import CREDENTIAL_KEY, api_token, serve

pytestmark = pytest.mark.anyio

ITEMS = 100_000
VALUE = "v" * 300
#: At most this part of the answer's size may be held at once (measured: under 3%, one page
#: of 200 items and what reading it takes, on either store).
SHARE = 0.1


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


async def test_100000_items_stream_in_flat_memory(store_url: str) -> None:
    async with await open_store(store_url, credential_key=CREDENTIAL_KEY) as store:
        await store.create_project(Project("p", "P"))
        collection = await store.create_collection("p", "big")
        for start in range(0, ITEMS, 10_000):
            batch = [(f"item-{i:06}", VALUE) for i in range(start, start + 10_000)]
            await store.put_collection_items(collection.id, batch, CollectionLimits())
        token = await api_token(store)  # an operator's: an instance admin
        async with (
            serve(store) as served,
            httpx2.AsyncClient(base_url=served.base_url, timeout=600) as http,
        ):
            headers = {"Authorization": f"Bearer {token}"}
            await http.get("/collections/big", params={"limit": 10}, headers=headers)  # warm
            tracemalloc.start()
            try:
                size, count, tail = await _read(http, headers)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert count == ITEMS
    assert tail.endswith(b'"cursor": null}')
    assert size > ITEMS * len(VALUE)
    assert peak < size * SHARE, f"{peak} bytes held while streaming {size} bytes"


async def _read(http: httpx2.AsyncClient, headers: dict[str, str]) -> tuple[int, int, bytes]:
    """The answer's size, how many items it holds, and its last bytes; nothing else kept."""
    marker = b'{"key":'
    size = count = 0
    carry = tail = b""
    params = {"limit": str(ITEMS)}
    async with http.stream("GET", "/collections/big", params=params, headers=headers) as answer:
        assert answer.status_code == 200
        async for chunk in answer.aiter_bytes():
            size += len(chunk)
            joined = carry + chunk
            count += joined.count(marker)
            # A marker split across chunks is matched with the carry, and counted once: the
            # carry is too short to hold a whole one.
            carry = joined[-(len(marker) - 1) :]
            tail = (tail + chunk)[-64:]
    return size, count, tail
