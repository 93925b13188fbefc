"""Users' TOTP second factor as stored (issue 18): the secret sealed with the credentials'
cipher (AES-256-GCM, bound to the user's id in a namespace of its own, so that it opens as
nothing else and nowhere else), the recovery codes as SHA-256 digests, and the last step
whose code was accepted.

Enrolment has two steps: :func:`begin_totp` keeps a new secret, not yet enabled (the page
shows it as a QR code); :func:`enable_totp` enables it once a code made from it was given.
The code checks themselves are the coordinator's (coordinator/mfa.py); what must not race is
here: :func:`use_totp_step` and :func:`use_recovery_code` are compare-and-set updates, so a
code (or a recovery code) replayed at the same moment by two requests passes only once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from fulmen.errors import ConfigError, ConflictError, NotFoundError
from fulmen.store.cipher import CredentialCipher
from fulmen.store.credentials import require_cipher
from fulmen.store.db import Tx, dumps, loads_or_none
from fulmen.store.models.sign_in import SecondFactor

__all__ = [
    "begin_totp",
    "disable_totp",
    "enable_totp",
    "get_second_factor",
    "replace_recovery_codes",
    "use_recovery_code",
    "use_totp_step",
]

#: The cipher's namespace for TOTP secrets (cipher.py's ``purpose``).
PURPOSE: Final = "totp"


async def begin_totp(
    tx: Tx, cipher: CredentialCipher | None, user_id: str, secret: str, now: datetime
) -> None:
    """Keep ``secret`` as the user's second factor to be confirmed (replacing one that was
    never confirmed).

    Raises:
        NotFoundError: no such user.
        ConflictError: ``totp_enabled``: the user has a confirmed second factor already.
    """
    sealed = require_cipher(cipher).seal(user_id, secret, purpose=PURPOSE)
    params = {"id": user_id, "secret": base64.b64encode(sealed).decode(), "now": now}
    if not await tx.execute("begin_user_totp", params):
        await _refuse_enabled(tx, user_id)


async def get_second_factor(
    tx: Tx, cipher: CredentialCipher | None, user_id: str
) -> SecondFactor | None:
    """The user's second factor, confirmed or not; ``None`` without one.

    Raises:
        NotFoundError: no such user.
        ConfigError: the secret does not open with this cipher (another key, or altered).
    """
    row = await tx.fetchone("get_user_totp", {"id": user_id})
    if row is None:
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")
    if row["totp_secret"] is None:
        return None
    try:
        sealed = base64.b64decode(row["totp_secret"], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"the second factor of user {user_id} is stored in an unknown format",
            code="credential_unreadable",
        ) from None
    secret = require_cipher(cipher).open(user_id, sealed, purpose=PURPOSE)
    assert isinstance(secret, str)  # begin_totp seals strings only
    codes = loads_or_none(row["recovery_codes"]) or []
    return SecondFactor(
        secret=secret,
        enabled=row["totp_enabled_at"] is not None,
        last_step=None if row["totp_last_step"] is None else int(row["totp_last_step"]),
        recovery_codes_left=len(codes),
    )


async def enable_totp(
    tx: Tx,
    user_id: str,
    step: int,
    recovery_digests: Sequence[str],
    now: datetime,
    *,
    keep_session: str = "",
) -> None:
    """Confirm the user's pending second factor: the code of ``step`` was given (it is not
    taken again), ``recovery_digests`` are the recovery codes' digests. Every session of
    the user's but ``keep_session`` (a digest) ends: whoever else held one signed in
    without the factor.

    Raises:
        ConflictError: ``totp_enabled`` (confirmed already) or ``totp_not_begun``.
    """
    params = {"id": user_id, "step": step, "codes": dumps(list(recovery_digests)), "now": now}
    if not await tx.execute("enable_user_totp", params):
        await _refuse_enabled(tx, user_id)
        raise ConflictError(
            "there is no second factor waiting to be confirmed: start again",
            code="totp_not_begun",
        )
    await tx.execute("end_user_dashboard_sessions", {"user_id": user_id, "keep": keep_session})


async def use_totp_step(tx: Tx, user_id: str, step: int) -> bool:
    """Take the code of ``step``: ``False`` if a code of that step or a later one was taken
    already (a replay), or the user has no enabled second factor."""
    return bool(await tx.execute("use_user_totp_step", {"id": user_id, "step": step}))


async def use_recovery_code(tx: Tx, user_id: str, digest: str) -> bool:
    """Take the recovery code whose digest is ``digest``: ``False`` if the user has no such
    unused code. The list is replaced only if it is still the one read (compare-and-set)."""
    row = await tx.fetchone("get_user_totp", {"id": user_id})
    if row is None or row["totp_enabled_at"] is None or row["recovery_codes"] is None:
        return False
    codes: list[str] = loads_or_none(row["recovery_codes"]) or []
    if digest not in codes:
        return False
    left = dumps([code for code in codes if code != digest])
    params = {"id": user_id, "old": row["recovery_codes"], "new": left}
    return bool(await tx.execute("use_user_recovery_code", params))


async def replace_recovery_codes(
    tx: Tx, user_id: str, recovery_digests: Sequence[str], now: datetime
) -> None:
    """New recovery codes for an enabled second factor; the old ones stop working.

    Raises:
        ConflictError: ``totp_not_enabled``.
    """
    params = {"id": user_id, "codes": dumps(list(recovery_digests)), "now": now}
    if not await tx.execute("replace_user_recovery_codes", params):
        raise ConflictError("there is no second factor to renew codes for", code="totp_not_enabled")


async def disable_totp(tx: Tx, user_id: str, now: datetime) -> None:
    """Remove the user's second factor (secret, recovery codes, last step)."""
    if not await tx.execute("disable_user_totp", {"id": user_id, "now": now}):
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")


async def _refuse_enabled(tx: Tx, user_id: str) -> None:
    row = await tx.fetchone("get_user_totp", {"id": user_id})
    if row is None:
        raise NotFoundError(f"user {user_id} does not exist", field="user_id")
    if row["totp_enabled_at"] is not None:
        raise ConflictError(
            "two-factor sign-in is on already: turn it off first to set up another device",
            code="totp_enabled",
        )
