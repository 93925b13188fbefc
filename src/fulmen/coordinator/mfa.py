"""The TOTP second factor's decisions (issue 18), without I/O: secrets, which 30-second step
a code belongs to, recovery codes, and how many wrong codes a user may give.

Codes are RFC 6238's (SHA-1, 6 digits, 30-second steps: what every authenticator app makes
from an ``otpauth://totp/`` URI), made by pyotp. A code is accepted from the step before the
current one to the step after (a phone's clock a little off, a code typed as it changed), and
:func:`matching_step` says which step it was, so that the store can accept each step once
(RFC 6238 §5.2: the verifier must not accept the second attempt of the same OTP).

Recovery codes are for the day the phone is lost: ten, each shown once, each usable once; the
store keeps only their SHA-256 (they are 50 random bits each, so a digest without salt or
stretching gives nothing away that guessing would not). They are typed in any case, with or
without the dash.

Wrong codes are limited per user: :data:`FAILURES_ALLOWED` within :data:`FAILURE_WINDOW`, then
the user waits until the oldest of them leaves the window (:func:`locked_until`). Guessing a
6-digit code at 5 tries a quarter of an hour takes about 5 years on average.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import pyotp

__all__ = [
    "FAILURES_ALLOWED",
    "FAILURE_WINDOW",
    "ISSUER",
    "RECOVERY_CODES",
    "STEP_SECONDS",
    "locked_until",
    "looks_like_code",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "provisioning_uri",
    "recovery_digest",
    "step_at",
]

STEP_SECONDS: Final = 30
DIGITS: Final = 6
#: Steps either side of the current one whose codes are accepted.
DRIFT_STEPS: Final = 1
#: How the authenticator app names the account's issuer.
ISSUER: Final = "Fulmen"
RECOVERY_CODES: Final = 10
#: Letters and digits that cannot be mistaken for one another (no 0 or o, 1 or l): 32 of them,
#: so a 10-character code holds 50 bits.
_RECOVERY_ALPHABET: Final = "abcdefghijkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH: Final = 10
FAILURES_ALLOWED: Final = 5
FAILURE_WINDOW: Final = timedelta(minutes=15)
_CODE: Final = re.compile(rf"[0-9]{{{DIGITS}}}")
_SPACING: Final = re.compile(r"[\s-]+")


def new_secret() -> str:
    """A new shared secret: 160 random bits (RFC 4226 §4's recommended length), base32."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    """The ``otpauth://totp/`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def step_at(moment: datetime) -> int:
    """The 30-second step ``moment`` falls in (the TOTP counter)."""
    return int(moment.timestamp()) // STEP_SECONDS


def looks_like_code(text: str) -> bool:
    """Whether ``text`` is shaped like an app's code (six digits, spaces allowed) rather
    than a recovery code or a password."""
    return _CODE.fullmatch(_SPACING.sub("", text)) is not None


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The step whose code ``code`` is, within the accepted drift of ``now``; ``None`` if it
    is none of theirs. Every candidate is compared, in constant time."""
    typed = _SPACING.sub("", code)
    if _CODE.fullmatch(typed) is None:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), typed):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    """Ten new recovery codes, written ``xxxxx-xxxxx``."""
    codes = []
    for _ in range(RECOVERY_CODES):
        code = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append(f"{code[:5]}-{code[5:]}")
    return codes


def recovery_digest(code: str) -> str:
    """What the store keeps of a recovery code, and finds a typed one by: the SHA-256 of
    the code in lower case without spaces or dashes."""
    return hashlib.sha256(_SPACING.sub("", code).lower().encode()).hexdigest()


def locked_until(failures: Sequence[datetime]) -> datetime | None:
    """When a user with these failures (within the window, oldest first) may try again;
    ``None``: now."""
    if len(failures) < FAILURES_ALLOWED:
        return None
    return failures[-FAILURES_ALLOWED] + FAILURE_WINDOW
