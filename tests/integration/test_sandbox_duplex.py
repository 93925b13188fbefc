"""Duplex runs: the worker keeps talking to a child after the payload (RunHandle.send)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fulmen.errors import SandboxError
from fulmen.sandbox import Limits, RunHandle, Zygote

TESTS = str(Path(__file__).resolve().parents[1])
D = "sandbox_entries.duplex:"
T = TypeVar("T")


def with_zygote(scenario: Callable[[Zygote], Awaitable[T]]) -> T:
    async def main() -> T:
        async with await Zygote.start(extra_sys_path=[TESTS]) as zygote:
            async with asyncio.timeout(30):
                return await scenario(zygote)

    return asyncio.run(main())


async def next_event(handle: RunHandle) -> dict[str, Any]:
    return await anext(handle)


def test_messages_arrive_in_order_then_close_input_ends_the_entry() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(D + "echo", {"tag": "t"}, Limits(), duplex=True)
        # Sent at once, before the child has read its payload: nothing may be lost, and a
        # message bigger than the socket buffer must be written in pieces.
        sizes = [0, 10, 300_000, 5]
        for n, size in enumerate(sizes):
            handle.send({"n": n, "pad": "x" * size})
        assert await next_event(handle) == {"ready": "t"}
        echoed = [await next_event(handle) for _ in sizes]
        assert echoed == [{"i": i, "n": i, "size": s} for i, s in enumerate(sizes)]
        handle.send({"n": 99})
        assert await next_event(handle) == {"i": 4, "n": 99, "size": 0}
        handle.close_input()
        handle.close_input()  # idempotent
        assert [e async for e in handle] == [{"closed": 5}]
        assert handle.exit.kind == "ok"

    with_zygote(scenario)


def test_a_thread_reads_while_the_entry_emits() -> None:
    async def scenario(zygote: Zygote) -> None:
        handle = await zygote.run(D + "reader_thread", {"emits": 500}, duplex=True)
        for n in range(200):
            handle.send({"n": n})
        handle.close_input()
        events = [e async for e in handle]
        assert events[:-1] == [{"tick": i} for i in range(500)]
        assert events[-1] == {"got": list(range(200))}
        assert handle.exit.kind == "ok"

    with_zygote(scenario)


def test_send_refuses_misuse_and_drops_messages_to_an_ended_run() -> None:
    async def scenario(zygote: Zygote) -> None:
        plain = await zygote.run("json:dumps", {})  # one-shot: raises, ends as error
        with pytest.raises(SandboxError, match="duplex"):
            plain.send({"n": 1})
        await plain.wait()

        handle = await zygote.run(D + "ignore_input", {}, duplex=True)
        assert await next_event(handle) == {"ready": True}
        for n in range(2000):  # far more than the socket holds: queued, never blocking
            handle.send({"n": n, "pad": "y" * 1000})
        with pytest.raises(SandboxError, match="JSON"):
            handle.send({"n": object()})
        handle.kill()
        result = await handle.wait()
        assert result.kind == "killed"
        handle.send({"n": "late"})  # dropped: the exit already says why
        handle.close_input()
        with pytest.raises(SandboxError, match="closed"):
            handle.send({"n": "after close"})

    with_zygote(scenario)
