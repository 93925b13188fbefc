"""The dashboard's change feed between coordinators that share a PostgreSQL store: a page on
one coordinator hears of a run that changed on another (LISTEN/NOTIFY on ``fulmen_changes``),
a coordinator does not hear its own notices twice, and a stray payload is ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from fulmen.coordinator.changes import Changes, Notice, Subscription, decode, encode
from fulmen.store.wakeups import CHANGES, PostgresWakeups

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def relaying(url: str) -> AsyncIterator[tuple[Changes, PostgresWakeups]]:
    """A coordinator's change feed, relayed through the database at ``url``."""
    changes = Changes(window=0.01)
    wakeups = PostgresWakeups(url, channel=CHANGES)
    relay = asyncio.get_running_loop().create_task(changes.relay(wakeups))
    try:
        yield changes, wakeups
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await wakeups.close()


async def until_heard(page: Subscription, act: Callable[[], Awaitable[None] | None]) -> None:
    """Do ``act`` until ``page`` hears of it: the first times, the other side's LISTEN may
    not be in place yet (the relays start in tasks of their own)."""
    async with asyncio.timeout(10):
        while True:
            done = act()
            if done is not None:
                await done
            if await page.wait(0.2):
                return


async def test_a_page_on_one_coordinator_hears_a_run_change_on_another(
    pg_database: str,
) -> None:
    async with relaying(pg_database) as (a, _), relaying(pg_database) as (b, _):
        async with b.subscribe("run-1") as on_b:
            await until_heard(on_b, lambda: a.changed("run-1"))  # through PostgreSQL only
        async with a.subscribe("run-2") as on_a:
            await until_heard(on_a, lambda: b.changed("run-2"))  # a listens too
        async with a.subscribe("run-3") as on_a:
            a.changed("run-3")
            assert await on_a.wait(5)  # a's own page, told at once
            # a's notice comes back to a through PostgreSQL: a does not tell its page again
            assert not await on_a.wait(0.5)


async def test_a_stray_payload_on_the_channel_is_ignored(pg_database: str) -> None:
    other = encode(Notice(frozenset({"r"})), "another")
    async with relaying(pg_database) as (changes, wakeups), changes.subscribe() as page:
        await until_heard(page, lambda: wakeups.notify(other))
        for stray in ("not json", '{"o": 1}', '{"o": "x", "r": [1]}'):
            await wakeups.notify(stray)
        await wakeups.notify(other)
        assert await page.wait(5)  # the relay went on past them


def test_a_notice_survives_the_payload_and_a_big_one_says_some_run() -> None:
    notice = Notice(frozenset({"a", "b"}), any_run=False)
    assert decode(encode(notice, "me")) == (notice, "me")
    many = Notice(frozenset(f"run-{i}" for i in range(500)))
    decoded = decode(encode(many, "me"))
    assert decoded is not None and decoded[0] == Notice(frozenset(), any_run=True)
    assert len(encode(many, "me")) < 8000
    for garbage in ("", "[]", '{"o": "x", "r": [1]}', '{"r": []}'):
        assert decode(garbage) is None
