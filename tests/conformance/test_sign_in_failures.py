"""Failed sign-ins in the store, on SQLite and PostgreSQL: an attempt is refused once its
account or address had its limit of failures within the window, saying from when it may be
tried again; a success takes its attempt back and clears the account; failures leave the
window and are pruned; a burst of concurrent attempts lets through no more than the limit,
and two stores on one database share the count."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fulmen.errors import InputError
from fulmen.store import SignInAttempt, SQLStore, open_store
from fulmen.store.sign_in_failures import retry_at
from fulmen_testing.clock import FakeClock

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

WINDOW = timedelta(minutes=15)
ADA = "email:ada@example.org"
HOME = "ip:192.0.2.1"


def limits(account: int = 3, address: int = 5) -> dict[str, int]:
    return {ADA: account, HOME: address}


async def fail(store: SQLStore, times: int, subjects: dict[str, int]) -> list[SignInAttempt]:
    """``times`` attempts, each let through (and so counted): wrong passwords."""
    attempts = [await store.begin_sign_in(subjects, WINDOW) for _ in range(times)]
    assert not any(attempt.refused for attempt in attempts)
    return attempts


def test_a_subject_may_try_again_once_its_limit_th_newest_failure_leaves_the_window() -> None:
    clock = FakeClock()
    newest_first = [clock.now() - timedelta(minutes=m) for m in (1, 4, 9)]
    assert retry_at(newest_first[:2], 3, WINDOW) is None
    assert retry_at(newest_first, 3, WINDOW) == newest_first[2] + WINDOW
    assert retry_at(newest_first, 2, WINDOW) == newest_first[1] + WINDOW


async def test_the_account_limit_refuses_until_its_failures_age(
    store: SQLStore, clock: FakeClock
) -> None:
    first = clock.now()
    await fail(store, 1, limits())
    clock.advance(minutes=5)
    await fail(store, 2, limits())
    refused = await store.begin_sign_in(limits(), WINDOW)
    assert refused.refused and refused.refused_until == first + WINDOW
    # Refused attempts are not counted: the lock ends with the window, not later.
    clock.set(first + WINDOW)
    assert not (await store.begin_sign_in(limits(), WINDOW)).refused
    # Another account from the same address is not this account's business.
    other = {"email:bob@example.org": 3, HOME: 5}
    assert not (await store.begin_sign_in(other, WINDOW)).refused


async def test_the_address_limit_covers_every_account_tried_from_it(
    store: SQLStore, clock: FakeClock
) -> None:
    for n in range(5):
        await fail(store, 1, {f"email:user{n}@example.org": 3, HOME: 5})
    refused = await store.begin_sign_in({"email:new@example.org": 3, HOME: 5}, WINDOW)
    assert refused.refused_until == clock.now() + WINDOW
    elsewhere = await store.begin_sign_in(
        {"email:new@example.org": 3, "ip:198.51.100.7": 5}, WINDOW
    )
    assert not elsewhere.refused


async def test_a_success_takes_its_attempt_back_and_clears_the_account(
    store: SQLStore, clock: FakeClock
) -> None:
    await fail(store, 2, limits(account=3, address=3))
    good = await store.begin_sign_in(limits(account=3, address=3), WINDOW)
    await store.forgive_sign_in(good, forget=ADA)
    # The account starts afresh; the address keeps its two failures, not the success.
    await fail(store, 1, limits(account=3, address=3))
    assert (await store.begin_sign_in(limits(account=3, address=3), WINDOW)).refused
    assert not (await store.begin_sign_in(limits(account=3, address=4), WINDOW)).refused
    # A refused attempt has nothing to take back.
    refused = await store.begin_sign_in(limits(account=3, address=3), WINDOW)
    await store.forgive_sign_in(refused)


async def test_failures_outside_the_window_are_pruned(
    store: SQLStore, clock: FakeClock, backend: Backend
) -> None:
    await fail(store, 3, limits())
    clock.advance(WINDOW.total_seconds())
    await fail(store, 1, {"email:someone@example.org": 3})  # any attempt prunes
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as other:
        assert not (await other.begin_sign_in(limits(), WINDOW)).refused


async def test_pruning_leaves_other_kinds_of_failure_to_their_own_window(
    store: SQLStore, clock: FakeClock
) -> None:
    """A second factor's wrong codes (mfa:…) count over their own window, however short the
    password attempts' is."""
    await store.note_sign_in_failure("mfa:u1", window=timedelta(minutes=30))
    await fail(store, 1, limits())
    clock.advance(WINDOW.total_seconds())
    await fail(store, 1, {"email:someone@example.org": 3})
    assert len(await store.sign_in_failures("mfa:u1", window=timedelta(minutes=30))) == 1


async def test_a_burst_of_attempts_lets_through_no_more_than_the_limit(
    store: SQLStore, clock: FakeClock, backend: Backend
) -> None:
    """The attack: many guesses sent at once, so that each is checked before any has been
    counted. Each is counted as it is let through, by whichever coordinator takes it."""
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as second:
        stores = [store, second] * 10
        attempts = await asyncio.gather(
            *(s.begin_sign_in(limits(account=5, address=50), WINDOW) for s in stores)
        )
    assert sum(not attempt.refused for attempt in attempts) == 5


async def test_bad_limits_are_refused(store: SQLStore) -> None:
    with pytest.raises(InputError):
        await store.begin_sign_in({ADA: 0}, WINDOW)
    with pytest.raises(InputError):
        await store.begin_sign_in({ADA: 1}, timedelta(0))
