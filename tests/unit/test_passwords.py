"""Passwords (coordinator/passwords.py): argon2id hashes, checked without telling an unknown
user from a wrong password, and a policy that asks for length only."""

from __future__ import annotations

import pytest

from fulmen.coordinator.passwords import check, check_strength, hash_password
from fulmen.errors import InputError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_hash_is_argon2id_and_checks_only_its_password() -> None:
    made = await hash_password("correct horse battery")
    assert made.startswith("$argon2id$")
    assert (await check(made, "correct horse battery")).ok
    assert not (await check(made, "correct horse batterY")).ok
    assert not (await check(None, "correct horse battery")).ok  # no password: no entry
    assert not (await check("not a hash", "correct horse battery")).ok


async def test_a_weaker_hash_is_remade_at_the_next_sign_in() -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse")
    checked = await check(weak, "correct horse")
    assert checked.ok and checked.rehash


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "weak_password"), ("aaaaaaaaaaaaaa", "weak_password"), ("x" * 1025, "bad_password")],
)
def test_the_policy_refuses_short_repetitive_and_huge_passwords(password: str, code: str) -> None:
    with pytest.raises(InputError) as refused:
        check_strength(password)
    assert (refused.value.code, refused.value.field) == (code, "password")
