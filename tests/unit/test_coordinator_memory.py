"""coordinator.memory and coordinator.logtext: replays answered once, a scrubber per run,
log messages joined as Lightning stores them."""

from __future__ import annotations

import asyncio

import pytest

from fulmen.coordinator.logtext import join_message
from fulmen.coordinator.memory import Outcome, RunMemories, RunMemory, fingerprint

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_fingerprints_ignore_key_order_but_not_values() -> None:
    assert fingerprint("run:log", {"a": 1, "b": 2}) == fingerprint("run:log", {"b": 2, "a": 1})
    assert fingerprint("run:log", {"a": 1}) != fingerprint("run:log", {"a": 2})
    assert fingerprint("run:log", {"a": 1}) != fingerprint("run:start", {"a": 1})


async def test_an_event_is_handled_once_and_its_copies_get_the_same_reply() -> None:
    memory = RunMemory()
    calls = 0
    release = asyncio.Event()

    async def handle() -> Outcome:
        nonlocal calls
        calls += 1
        await release.wait()
        return True, {"step_id": "s"}

    first = asyncio.create_task(memory.once("k", handle))
    second = asyncio.create_task(memory.once("k", handle))  # arrives while the first runs
    await asyncio.sleep(0)
    release.set()
    assert await first == await second == (True, {"step_id": "s"})
    assert await memory.once("k", handle) == (True, {"step_id": "s"})
    assert calls == 1


async def test_refusals_and_failures_are_not_remembered() -> None:
    memory = RunMemory()
    outcomes: list[Outcome] = [(False, {"state": ["x"]}), (True, None)]

    async def handle() -> Outcome:
        return outcomes.pop(0)

    assert await memory.once("k", handle) == (False, {"state": ["x"]})
    assert await memory.once("k", handle) == (True, None)

    async def boom() -> Outcome:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        await memory.once("j", boom)

    async def fine() -> Outcome:
        return True, {}

    assert await memory.once("j", fine) == (True, {})


def test_a_run_masks_nothing_until_its_scrubber_is_built() -> None:
    memory = RunMemory()
    assert not memory.scrubber  # channels/run.py builds it when a worker joins
    assert memory.scrubber.text("anything") == "anything"


def test_memories_forget_the_least_recently_used_runs() -> None:
    memories = RunMemories(limit=2)
    a = memories("a")
    memories("b")
    assert memories("a") is a
    memories("c")
    assert memories.peek("b") is None and memories.peek("a") is a


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        (["hello", "world"], "hello world"),
        (["n =", 1, None, {"a": [1, "x"]}, True], 'n = 1 null {"a":[1,"x"]} true'),
        (["tab\tand\nline"], "tab\tand\nline"),
        (["bell\x07 nul\x00 del\x7f"], "bell\ufffd nul\ufffd del\ufffd"),
    ],
)
def test_messages_are_joined_as_lightning_stores_them(parts: list[object], text: str) -> None:
    assert join_message(parts) == text  # type: ignore[arg-type]
