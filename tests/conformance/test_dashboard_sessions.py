"""The dashboard's sessions in the store, on SQLite and PostgreSQL: they last as long as the
limits allow, no longer than their token, and end when signed out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulmen.errors import InputError, NotFoundError
from fulmen.store import ApiToken, SessionLimits, SQLStore
from fulmen_testing.clock import FakeClock

pytestmark = pytest.mark.anyio

LIMITS = SessionLimits(idle=timedelta(hours=12), absolute=timedelta(days=7))


async def token(store: SQLStore, token_id: str = "t1") -> ApiToken:
    return await store.put_api_token(ApiToken(token_id, "dashboard", "ab" * 32))


async def test_a_session_resumes_with_its_token_until_signed_out(store: SQLStore) -> None:
    stored = await token(store)
    await store.open_dashboard_session("d1", stored.id, LIMITS)
    assert await store.resume_dashboard_session("d1", LIMITS) == stored
    assert await store.resume_dashboard_session("d2", LIMITS) is None

    await store.end_dashboard_session("d1")
    assert await store.resume_dashboard_session("d1", LIMITS) is None
    await store.end_dashboard_session("d1")  # twice is no error


async def test_a_session_needs_an_existing_token(store: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await store.open_dashboard_session("d1", "nobody", LIMITS)


async def test_an_idle_session_expires_and_use_keeps_it_alive(
    store: SQLStore, clock: FakeClock
) -> None:
    stored = await token(store)
    await store.open_dashboard_session("used", stored.id, LIMITS)
    await store.open_dashboard_session("idle", stored.id, LIMITS)
    for _ in range(3):  # 33 hours in all, never 12 without use
        clock.advance(hours=11)
        assert await store.resume_dashboard_session("used", LIMITS) == stored
    assert await store.resume_dashboard_session("idle", LIMITS) is None
    # expired for good: a later, longer limit does not bring it back
    assert (
        await store.resume_dashboard_session(
            "idle", SessionLimits(idle=timedelta(days=30), absolute=timedelta(days=30))
        )
        is None
    )


async def test_a_session_expires_at_its_absolute_limit_however_used(
    store: SQLStore, clock: FakeClock
) -> None:
    stored = await token(store)
    await store.open_dashboard_session("d1", stored.id, LIMITS)
    for _ in range(15):  # 165 hours, never 12 without use
        clock.advance(hours=11)
        assert await store.resume_dashboard_session("d1", LIMITS) == stored
    clock.advance(hours=3)  # 168 hours: seven days since signing in
    assert await store.resume_dashboard_session("d1", LIMITS) is None


async def test_last_use_is_noted_to_within_a_minute(store: SQLStore, clock: FakeClock) -> None:
    stored = await token(store)
    limits = SessionLimits(idle=timedelta(minutes=5), absolute=timedelta(days=1))
    await store.open_dashboard_session("d1", stored.id, limits)
    clock.advance(seconds=30)
    assert await store.resume_dashboard_session("d1", limits) == stored  # not written
    clock.advance(seconds=4 * 60 + 40)  # 5:10 since opening, 4:40 since that use
    assert await store.resume_dashboard_session("d1", limits) is None


async def test_deleting_the_token_deletes_its_sessions(store: SQLStore) -> None:
    first, second = await token(store, "t1"), await token(store, "t2")
    await store.open_dashboard_session("d1", first.id, LIMITS)
    await store.open_dashboard_session("d2", second.id, LIMITS)
    await store.delete_api_token(first.id)
    assert await store.resume_dashboard_session("d1", LIMITS) is None
    assert await store.resume_dashboard_session("d2", LIMITS) == second
    # the row went with the token: a token made again with the same id has no session
    await token(store, "t1")
    assert await store.resume_dashboard_session("d1", LIMITS) is None


async def test_opening_a_session_removes_expired_ones(store: SQLStore, clock: FakeClock) -> None:
    stored = await token(store)
    await store.open_dashboard_session("old", stored.id, LIMITS)
    clock.advance(days=8)
    await store.open_dashboard_session("new", stored.id, LIMITS)
    generous = SessionLimits(idle=timedelta(days=30), absolute=timedelta(days=30))
    assert await store.resume_dashboard_session("old", generous) is None
    assert await store.resume_dashboard_session("new", generous) == stored


def test_limits_must_be_positive() -> None:
    with pytest.raises(InputError):
        SessionLimits(idle=timedelta(0), absolute=timedelta(days=1))
