"""Managing users in the store, on SQLite and PostgreSQL: a disabled user's sessions end and
come back no more, enabling them lets them sign in again; the instance always keeps an
active instance admin, even when two admins remove each other at once; a stronger hash of
the same password replaces the old one without ending anyone's session."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import NewUser, SessionLimits, SQLStore, open_store

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

LIMITS = SessionLimits(idle=timedelta(hours=12), absolute=timedelta(days=7))


async def test_disabling_ends_the_sessions_and_enabling_lets_them_in_again(
    store: SQLStore,
) -> None:
    await store.create_user(NewUser("admin@example.org", instance_admin=True))
    ada = await store.create_user(NewUser("ada@example.org", password_hash="h"))
    await store.open_dashboard_session("d1", LIMITS, user_id=ada.id)

    disabled = await store.set_user_disabled(ada.id, True)
    assert not disabled.active and disabled.disabled_at is not None
    assert await store.resume_dashboard_session("d1", LIMITS) is None
    assert await store.count_users() == (1, 1)

    enabled = await store.set_user_disabled(ada.id, False)
    assert enabled.active
    assert await store.resume_dashboard_session("d1", LIMITS) is None  # ended, not paused
    await store.open_dashboard_session("d2", LIMITS, user_id=ada.id)
    assert await store.resume_dashboard_session("d2", LIMITS) is not None
    with pytest.raises(NotFoundError):
        await store.set_user_disabled("nobody", True)


async def test_the_last_active_admin_is_neither_disabled_nor_unmade(store: SQLStore) -> None:
    first = await store.create_user(NewUser("first@example.org", instance_admin=True))
    for change in (
        store.set_user_disabled(first.id, True),
        store.set_instance_admin(first.id, False),
    ):
        with pytest.raises(ConflictError) as refused:
            await change
        assert refused.value.code == "last_admin" and "first@example.org" in refused.value.message

    ada = await store.create_user(NewUser("ada@example.org"))
    made = await store.set_instance_admin(ada.id, True)
    assert made.instance_admin
    assert not (await store.set_instance_admin(first.id, False)).instance_admin
    with pytest.raises(ConflictError):  # ada is the last now
        await store.set_user_disabled(ada.id, True)
    # A disabled admin does not count as one who could manage the instance.
    await store.set_instance_admin(first.id, True)
    await store.set_user_disabled(first.id, True)
    with pytest.raises(ConflictError):
        await store.set_instance_admin(ada.id, False)
    # Nor is disabling a disabled admin, or unmaking them, anyone's loss.
    assert not (await store.set_instance_admin(first.id, False)).instance_admin


async def test_two_admins_removing_each_other_at_once_leave_one(
    store: SQLStore, backend: Backend
) -> None:
    one = await store.create_user(NewUser("one@example.org", instance_admin=True))
    two = await store.create_user(NewUser("two@example.org", instance_admin=True))
    async with await open_store(backend.url, credential_key=KEY) as other:
        results = await asyncio.gather(
            store.set_user_disabled(one.id, True),
            other.set_user_disabled(two.id, True),
            return_exceptions=True,
        )
    assert sum(isinstance(result, ConflictError) for result in results) == 1, results
    assert (await store.count_users())[1] == 1


async def test_a_rehash_keeps_the_sessions_and_loses_to_a_password_change(
    store: SQLStore,
) -> None:
    ada = await store.create_user(NewUser("ada@example.org", password_hash="old"))
    await store.open_dashboard_session("d1", LIMITS, user_id=ada.id)
    assert await store.rehash_password(ada.id, "old", "stronger")
    again = await store.get_user(ada.id)
    assert again.password_hash == "stronger"
    assert again.password_changed_at == ada.password_changed_at
    assert await store.resume_dashboard_session("d1", LIMITS) is not None
    # The hash that was checked is no longer the user's: a change made meanwhile stays.
    await store.set_password(ada.id, "changed")
    assert not await store.rehash_password(ada.id, "stronger", "stale")
    assert (await store.get_user(ada.id)).password_hash == "changed"


async def test_an_address_may_have_a_dotless_domain_but_not_320_characters(
    store: SQLStore,
) -> None:
    admin = await store.create_user(NewUser("Admin@Localhost", instance_admin=True))
    assert admin.email == "admin@localhost"
    with pytest.raises(InputError) as refused:
        await store.create_user(NewUser("a" * 320 + "@example.org"))
    assert refused.value.code == "bad_email" and "at most 320" in refused.value.message
