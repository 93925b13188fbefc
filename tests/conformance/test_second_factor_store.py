"""The second factor, single sign-on requests, sign-in failures and instance settings in the
store, on SQLite and PostgreSQL: the TOTP secret is sealed at rest, a step and a recovery
code are taken once, a sign-on request is taken once and not after it expires."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import psycopg
import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import InstanceSettings, NewUser, SQLStore, SsoRequest, open_store
from fulmen_testing.clock import FakeClock

from .conftest import Backend

pytestmark = pytest.mark.anyio

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
WINDOW = timedelta(minutes=15)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def stored_secret(backend: Backend, store: SQLStore, user_id: str) -> str:
    """The raw ``totp_secret`` column, read past the store."""
    if backend.conninfo is None:
        import sqlite3

        path = backend.url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT totp_secret FROM users WHERE id = ?", (user_id,)).fetchone()
    else:
        with psycopg.connect(backend.conninfo) as conn:
            row = conn.execute("SELECT totp_secret FROM users WHERE id = %s", (user_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def test_enrolment_keeps_the_secret_sealed_until_confirmed(
    store: SQLStore, backend: Backend
) -> None:
    ada = await store.create_user(NewUser("ada@example.org"))
    assert await store.get_second_factor(ada.id) is None
    await store.begin_totp(ada.id, SECRET)
    pending = await store.get_second_factor(ada.id)
    assert pending is not None and (pending.secret, pending.enabled) == (SECRET, False)
    assert SECRET not in await stored_secret(backend, store, ada.id)
    assert SECRET not in repr(pending)
    assert not (await store.get_user(ada.id)).totp_enabled

    await store.enable_totp(ada.id, 100, [digest("a"), digest("b")])
    enabled = await store.get_second_factor(ada.id)
    assert enabled is not None and enabled.enabled
    assert (enabled.last_step, enabled.recovery_codes_left) == (100, 2)
    assert (await store.get_user(ada.id)).totp_enabled
    with pytest.raises(ConflictError) as refused:
        await store.begin_totp(ada.id, "ANOTHERSECRETAAAA")
    assert refused.value.code == "totp_enabled"
    with pytest.raises(ConflictError):
        await store.enable_totp(ada.id, 101, [])
    with pytest.raises(NotFoundError):
        await store.begin_totp("nobody", SECRET)

    await store.disable_totp(ada.id)
    assert await store.get_second_factor(ada.id) is None
    assert not (await store.get_user(ada.id)).totp_enabled


async def test_the_secret_opens_only_with_the_key_it_was_sealed_with(
    store: SQLStore, backend: Backend, clock: FakeClock
) -> None:
    ada = await store.create_user(NewUser("ada@example.org"))
    await store.begin_totp(ada.id, SECRET)
    async with await open_store(backend.url, credential_key=bytes(32), clock=clock) as other:
        with pytest.raises(Exception) as refused:
            await other.get_second_factor(ada.id)
    assert getattr(refused.value, "code", "") == "credential_key_mismatch"


async def test_a_step_is_taken_once_and_never_an_earlier_one(store: SQLStore) -> None:
    ada = await store.create_user(NewUser("ada@example.org"))
    await store.begin_totp(ada.id, SECRET)
    assert not await store.use_totp_step(ada.id, 5)  # not enabled yet
    await store.enable_totp(ada.id, 10, [])
    assert not await store.use_totp_step(ada.id, 10)  # the confirming code's step
    assert await store.use_totp_step(ada.id, 11)
    assert not await store.use_totp_step(ada.id, 11)
    assert not await store.use_totp_step(ada.id, 9)
    assert await store.use_totp_step(ada.id, 12)


async def test_a_recovery_code_is_taken_once(store: SQLStore) -> None:
    ada = await store.create_user(NewUser("ada@example.org"))
    await store.begin_totp(ada.id, SECRET)
    await store.enable_totp(ada.id, 1, [digest("a"), digest("b")])
    assert await store.use_recovery_code(ada.id, digest("a"))
    assert not await store.use_recovery_code(ada.id, digest("a"))
    assert not await store.use_recovery_code(ada.id, digest("c"))
    factor = await store.get_second_factor(ada.id)
    assert factor is not None and factor.recovery_codes_left == 1
    await store.replace_recovery_codes(ada.id, [digest("x")])
    assert not await store.use_recovery_code(ada.id, digest("b"))
    assert await store.use_recovery_code(ada.id, digest("x"))


async def test_sign_in_failures_count_within_their_window(
    store: SQLStore, clock: FakeClock
) -> None:
    for _ in range(3):
        await store.note_sign_in_failure("mfa:ada", window=WINDOW)
        clock.advance(minutes=6)
    await store.note_sign_in_failure("mfa:bob", window=WINDOW)
    # 18, 12 and 6 minutes ago: two within the quarter of an hour
    assert len(await store.sign_in_failures("mfa:ada", window=WINDOW)) == 2
    assert len(await store.sign_in_failures("mfa:bob", window=WINDOW)) == 1
    await store.clear_sign_in_failures("mfa:ada")
    assert await store.sign_in_failures("mfa:ada", window=WINDOW) == []
    assert len(await store.sign_in_failures("mfa:bob", window=WINDOW)) == 1


async def test_instance_settings_have_defaults_and_refuse_what_they_do_not_know(
    store: SQLStore,
) -> None:
    assert await store.get_instance_settings() == InstanceSettings()
    changed = await store.set_instance_settings({"require_mfa": True})
    assert changed == InstanceSettings(require_mfa=True)
    assert await store.get_instance_settings() == changed
    with pytest.raises(InputError) as unknown:
        await store.set_instance_settings({"require_mfa": False, "colour": "red"})
    assert (unknown.value.code, unknown.value.field) == ("unknown_setting", "colour")
    with pytest.raises(InputError) as wrong:
        await store.set_instance_settings({"require_mfa": "yes"})
    assert wrong.value.code == "bad_setting"
    assert (await store.get_instance_settings()).require_mfa  # nothing changed
    await store.set_instance_settings({"require_mfa": False})
    assert not (await store.get_instance_settings()).require_mfa


async def test_a_sign_on_request_is_taken_once_before_it_expires(
    store: SQLStore, clock: FakeClock
) -> None:
    later = clock.now() + timedelta(minutes=10)
    request = SsoRequest("nonce", "verifier", "http://x/ui/login/sso/callback", "/ui/runs", later)
    await store.put_sso_request("d1", request)
    assert await store.take_sso_request("d1") == request
    assert await store.take_sso_request("d1") is None
    assert await store.take_sso_request("never") is None
    await store.put_sso_request("d2", request)
    clock.advance(minutes=10)
    assert await store.take_sso_request("d2") is None


async def test_a_session_begun_by_sign_on_is_marked_until_it_ends(store: SQLStore) -> None:
    from fulmen.store import SessionLimits

    ada = await store.create_user(NewUser("ada@example.org"))
    limits = SessionLimits(idle=timedelta(hours=1), absolute=timedelta(hours=2))
    await store.open_dashboard_session("s1", limits, user_id=ada.id)
    await store.open_dashboard_session("s2", limits, user_id=ada.id)
    await store.mark_sso_session("s1")
    assert await store.is_sso_session("s1") and not await store.is_sso_session("s2")
    await store.end_dashboard_session("s1")
    assert not await store.is_sso_session("s1")
