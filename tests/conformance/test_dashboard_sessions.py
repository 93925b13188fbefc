"""The dashboard's sessions in the store, on SQLite and PostgreSQL: they last as long as the
limits allow, no longer than their token or user, and end when signed out or when the user's
password changes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fulmen.errors import InputError, NotFoundError
from fulmen.store import ApiToken, NewUser, SessionLimits, SQLStore
from fulmen_testing.clock import FakeClock

pytestmark = pytest.mark.anyio

LIMITS = SessionLimits(idle=timedelta(hours=12), absolute=timedelta(days=7))


async def token(store: SQLStore, token_id: str = "t1") -> ApiToken:
    return await store.put_api_token(ApiToken(token_id, "dashboard", "ab" * 32))


async def holder(store: SQLStore, digest: str, limits: SessionLimits) -> str | None:
    """Whose the live session ``digest`` is (its token's or user's id), else ``None``."""
    session = await store.resume_dashboard_session(digest, limits)
    return None if session is None else session.token_id or session.user_id


async def test_a_session_resumes_with_its_token_until_signed_out(store: SQLStore) -> None:
    stored = await token(store)
    await store.open_dashboard_session("d1", LIMITS, token_id=stored.id)
    assert await holder(store, "d1", LIMITS) == stored.id
    assert await store.resume_dashboard_session("d2", LIMITS) is None

    await store.end_dashboard_session("d1")
    assert await store.resume_dashboard_session("d1", LIMITS) is None
    await store.end_dashboard_session("d1")  # twice is no error


async def test_a_session_needs_an_existing_token(store: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await store.open_dashboard_session("d1", LIMITS, token_id="nobody")


async def test_an_idle_session_expires_and_use_keeps_it_alive(
    store: SQLStore, clock: FakeClock
) -> None:
    stored = await token(store)
    await store.open_dashboard_session("used", LIMITS, token_id=stored.id)
    await store.open_dashboard_session("idle", LIMITS, token_id=stored.id)
    for _ in range(3):  # 33 hours in all, never 12 without use
        clock.advance(hours=11)
        assert await holder(store, "used", LIMITS) == stored.id
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
    await store.open_dashboard_session("d1", LIMITS, token_id=stored.id)
    for _ in range(15):  # 165 hours, never 12 without use
        clock.advance(hours=11)
        assert await holder(store, "d1", LIMITS) == stored.id
    clock.advance(hours=3)  # 168 hours: seven days since signing in
    assert await store.resume_dashboard_session("d1", LIMITS) is None


async def test_last_use_is_noted_to_within_a_minute(store: SQLStore, clock: FakeClock) -> None:
    stored = await token(store)
    limits = SessionLimits(idle=timedelta(minutes=5), absolute=timedelta(days=1))
    await store.open_dashboard_session("d1", limits, token_id=stored.id)
    clock.advance(seconds=30)
    assert await holder(store, "d1", limits) == stored.id  # not written
    clock.advance(seconds=4 * 60 + 40)  # 5:10 since opening, 4:40 since that use
    assert await store.resume_dashboard_session("d1", limits) is None


async def test_deleting_the_token_deletes_its_sessions(store: SQLStore) -> None:
    first, second = await token(store, "t1"), await token(store, "t2")
    await store.open_dashboard_session("d1", LIMITS, token_id=first.id)
    await store.open_dashboard_session("d2", LIMITS, token_id=second.id)
    await store.delete_api_token(first.id)
    assert await store.resume_dashboard_session("d1", LIMITS) is None
    assert await holder(store, "d2", LIMITS) == second.id
    # the row went with the token: a token made again with the same id has no session
    await token(store, "t1")
    assert await store.resume_dashboard_session("d1", LIMITS) is None


async def test_opening_a_session_removes_expired_ones(store: SQLStore, clock: FakeClock) -> None:
    stored = await token(store)
    await store.open_dashboard_session("old", LIMITS, token_id=stored.id)
    clock.advance(days=8)
    await store.open_dashboard_session("new", LIMITS, token_id=stored.id)
    generous = SessionLimits(idle=timedelta(days=30), absolute=timedelta(days=30))
    assert await store.resume_dashboard_session("old", generous) is None
    assert await holder(store, "new", generous) == stored.id


async def test_a_user_session_ends_when_the_password_changes_but_the_changing_one(
    store: SQLStore,
) -> None:
    ada = await store.create_user(NewUser("Ada@Example.org", password_hash="h1"))
    await store.open_dashboard_session("here", LIMITS, user_id=ada.id)
    await store.open_dashboard_session("there", LIMITS, user_id=ada.id)
    await store.open_dashboard_session("mfa", LIMITS, user_id=ada.id, stage="mfa")
    session = await store.resume_dashboard_session("mfa", LIMITS)
    assert session is not None and (session.user_id, session.stage) == (ada.id, "mfa")
    await store.set_dashboard_session_stage("mfa", "full")
    session = await store.resume_dashboard_session("mfa", LIMITS)
    assert session is not None and session.stage == "full"

    await store.set_password(ada.id, "h2", keep_session="here")
    assert await holder(store, "here", LIMITS) == ada.id
    assert await holder(store, "there", LIMITS) is None
    assert await holder(store, "mfa", LIMITS) is None


async def test_a_session_is_a_users_or_a_tokens(store: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await store.open_dashboard_session("d1", LIMITS, user_id="nobody")
    with pytest.raises(InputError):
        await store.open_dashboard_session("d1", LIMITS)


def test_limits_must_be_positive() -> None:
    with pytest.raises(InputError):
        SessionLimits(idle=timedelta(0), absolute=timedelta(days=1))
