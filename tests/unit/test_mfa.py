"""The second factor's decisions: a code matches its own step and the ones either side,
recovery codes are typed loosely and kept as digests, and five wrong codes lock for the
window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp

from fulmen.coordinator import mfa

NOW = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)


def test_a_code_matches_its_step_and_the_ones_either_side() -> None:
    secret = mfa.new_secret()
    totp = pyotp.TOTP(secret)
    step = mfa.step_at(NOW)
    assert mfa.matching_step(secret, totp.at(NOW), NOW) == step
    assert mfa.matching_step(secret, totp.at(NOW - timedelta(seconds=30)), NOW) == step - 1
    assert mfa.matching_step(secret, totp.at(NOW + timedelta(seconds=30)), NOW) == step + 1
    assert mfa.matching_step(secret, totp.at(NOW - timedelta(seconds=60)), NOW) is None
    assert mfa.matching_step(secret, totp.at(NOW + timedelta(seconds=60)), NOW) is None
    code = totp.at(NOW)
    assert mfa.matching_step(secret, f" {code[:3]} {code[3:]} ", NOW) == step
    for wrong in ("", "12345", "1234567", "abcdef", "12345a"):
        assert mfa.matching_step(secret, wrong, NOW) is None


def test_secrets_are_new_each_time_and_read_by_authenticator_apps() -> None:
    secret = mfa.new_secret()
    assert len(secret) == 32 and secret != mfa.new_secret()  # 160 bits of base32
    uri = mfa.provisioning_uri(secret, "ada@example.org")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert "ada%40example.org" in parts.path and parts.path.startswith("/Fulmen")
    query = parse_qs(parts.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Fulmen"]


def test_recovery_codes_are_ten_distinct_and_typed_loosely() -> None:
    codes = mfa.new_recovery_codes()
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 11 and code[5] == "-"
        assert not set(code) & set("0o1l")
    code = codes[0]
    digest = mfa.recovery_digest(code)
    assert len(digest) == 64 and code not in digest
    assert mfa.recovery_digest(code.upper().replace("-", " ")) == digest
    assert mfa.recovery_digest(code.replace("-", "")) == digest
    assert mfa.recovery_digest(codes[1]) != digest
    assert mfa.looks_like_code("123 456") and not mfa.looks_like_code(code)


def test_five_failures_lock_until_the_oldest_leaves_the_window() -> None:
    failures = [NOW + timedelta(minutes=m) for m in range(4)]
    assert mfa.locked_until(failures) is None
    failures.append(NOW + timedelta(minutes=10))
    assert mfa.locked_until(failures) == NOW + mfa.FAILURE_WINDOW
    failures.append(NOW + timedelta(minutes=11))
    assert mfa.locked_until(failures) == NOW + timedelta(minutes=1) + mfa.FAILURE_WINDOW
