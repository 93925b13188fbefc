"""The coordinator's heap trim: it calls malloc_trim(0) every interval, and where the C
library has none it ends at once instead of failing."""

from __future__ import annotations

import asyncio

import pytest

from fulmen.coordinator import heap

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_heap_is_trimmed_again_and_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pads: list[int] = []
    third = asyncio.Event()

    def trim(pad: int) -> int:
        pads.append(pad)
        if len(pads) == 3:
            third.set()
        return 1

    monkeypatch.setattr(heap, "_malloc_trim", lambda: trim)
    task = asyncio.get_running_loop().create_task(heap.trim_forever(interval=0.0))
    async with asyncio.timeout(10):
        await third.wait()
    task.cancel()
    assert pads[:3] == [0, 0, 0]


async def test_without_malloc_trim_it_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    async with asyncio.timeout(10):
        await heap.trim_forever(interval=3600.0)


def test_glibc_has_malloc_trim() -> None:
    trim = heap._malloc_trim()
    assert trim is not None  # this project's machines run glibc
    assert trim(0) in (0, 1)
