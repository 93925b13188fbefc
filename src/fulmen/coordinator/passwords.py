"""Users' passwords: argon2id hashes, checked off the event loop.

argon2id (argon2-cffi, the PyCA-maintained binding of the reference implementation) is the
memory-hard algorithm OWASP recommends first; its default parameters are RFC 9106's "second
recommended" profile (64 MiB, 3 passes, 4 lanes): about 50 ms on one core, which is the
point. Hashing runs in a thread so that a sign-in does not stall every other request, and a
sign-in for an e-mail nobody has is checked against a dummy hash, so that the answer takes
as long whether the address exists or not.

A hash made with weaker parameters than today's is remade at the next successful sign-in
(:func:`check` says so), so raising the cost later reaches every user who signs in.
"""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fulmen.errors import InputError

__all__ = ["MIN_LENGTH", "Checked", "check", "check_strength", "hash_password"]

#: NIST SP 800-63B asks for at least 8; we ask for 10, and for nothing else (no composition
#: rules, which make passwords weaker in practice, as the same guideline says).
MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 1024

_hasher: Final = PasswordHasher()


@cache
def _dummy() -> str:
    return _hasher.hash("a password nobody has")


def check_strength(password: str) -> None:
    """Raise unless ``password`` is one Fulmen accepts.

    Raises:
        InputError: ``weak_password`` (too short, or the same character over and over)
            or ``bad_password`` (over 1024 characters).
    """
    if len(password) > MAX_LENGTH:
        raise InputError(
            f"a password is at most {MAX_LENGTH} characters", code="bad_password", field="password"
        )
    if len(password) < MIN_LENGTH or len(set(password)) < 3:
        raise InputError(
            f"a password needs at least {MIN_LENGTH} characters, not all the same",
            code="weak_password",
            field="password",
        )


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (checked with :func:`check_strength` first).

    Raises:
        InputError: see :func:`check_strength`.
    """
    check_strength(password)
    return await asyncio.to_thread(_hasher.hash, password)


class Checked:
    """What :func:`check` found: ``ok``, and whether the hash should be remade."""

    __slots__ = ("ok", "rehash")

    def __init__(self, ok: bool, rehash: bool = False) -> None:
        self.ok = ok
        self.rehash = rehash


async def check(password_hash: str | None, password: str) -> Checked:
    """Whether ``password`` matches ``password_hash`` (``None``: a user without a password,
    or nobody: checked against a dummy, and refused)."""
    if len(password) > MAX_LENGTH:
        return Checked(False)
    return await asyncio.to_thread(_check, password_hash, password)


def _check(password_hash: str | None, password: str) -> Checked:
    try:
        _hasher.verify(password_hash or _dummy(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Checked(False)
    if password_hash is None:
        return Checked(False)
    return Checked(True, _hasher.check_needs_rehash(password_hash))
