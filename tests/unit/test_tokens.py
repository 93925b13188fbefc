"""Worker and run tokens: minting, verification with an injected clock, interoperability with
ws-worker's recorded token and with joserfc, and the attack suite (each refusal has its code)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey, RSAKey
from jwt.warnings import InsecureKeyLengthWarning

from fulmen.errors import TokenError
from fulmen.tokens import (
    DEFAULT_GRACE,
    TOKEN_ERRORS,
    RunClaims,
    WorkerClaims,
    mint_run_token,
    mint_worker_token,
    verify_run_token,
    verify_worker_token,
)

SECRET = "EBgBJbk7YqO4qLKkFCm8fsmVjczQdis1mgxf8XrQ5IE="  # the shape gen_worker_keys makes
NOW = 1_795_358_223.0
RUN = "7b1e5b3e-4c1a-4a57-9d0e-2f0b7c1e9a11"

# What ws-worker 1.25.0 sent in the recorded capture, signed with the throwaway secret "abc".
RECORDED_WORKER_TOKEN = (
    "eyJhbGciOiJIUzI1NiJ9.eyJ3b3JrZXJfaWQiOiJraGFraS1mYWN0cy1yZW1haW4iLCJpYXQiOjE3OTUzNTgyMjMsIm"
    "lzcyI6InVybjpvcGVuZm46d29ya2VyIn0.gltSUHZ3VN51rU5mBesYP89aipw0uP3kCDYDRt0JhCc"
)


@pytest.fixture(scope="module")
def key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: Any, signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def run_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "id": RUN,
        "sub": f"run:{RUN}",
        "iss": "Lightning",
        "nbf": int(NOW),
        "exp": int(NOW) + 300 + 10,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def rs256(key: RSAPrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm="RS256")


# -- worker tokens --------------------------------------------------------------------------


def test_mints_exactly_the_token_ws_worker_sent() -> None:
    with pytest.warns(InsecureKeyLengthWarning):  # "abc" is far too short, and PyJWT says so
        token = mint_worker_token("abc", "khaki-facts-remain", now=1795358223.6)
    assert token == RECORDED_WORKER_TOKEN


def test_accepts_the_recorded_worker_token_which_has_no_exp_or_nbf() -> None:
    claims = verify_worker_token(RECORDED_WORKER_TOKEN, "abc", now=NOW + 86400 * 365)
    assert claims == WorkerClaims("khaki-facts-remain", 1795358223, "urn:openfn:worker")


def test_worker_token_round_trip_and_optional_expiry() -> None:
    token = mint_worker_token(SECRET, "brave-lime-otter", now=NOW)
    assert verify_worker_token(token, SECRET, now=NOW).worker_id == "brave-lime-otter"
    assert jwt.get_unverified_header(token) == {"alg": "HS256"}
    expiring = mint_worker_token(SECRET, "w", now=NOW, lifetime=60)
    assert verify_worker_token(expiring, SECRET, now=NOW + 64.9).exp == NOW + 60
    with pytest.raises(TokenError) as info:
        verify_worker_token(expiring, SECRET, now=NOW + 65)
    assert info.value.code == "expired"


def test_a_worker_clock_far_ahead_does_not_matter() -> None:
    token = mint_worker_token(SECRET, "w", now=NOW + 3600)
    assert verify_worker_token(token, SECRET, now=NOW).iat == NOW + 3600


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


WORKER = {"worker_id": "w", "iat": int(NOW), "iss": "urn:openfn:worker"}

WORKER_ATTACKS: list[tuple[str, Callable[[RSAPrivateKey], object], str]] = [
    ("alg none", lambda k: compact({"alg": "none"}, WORKER), "bad_algorithm"),
    ("RS256 instead of HS256", lambda k: rs256(k, WORKER), "bad_algorithm"),
    ("another secret", lambda k: hs256(WORKER, "x" * 44), "bad_signature"),
    (
        "tampered payload",
        lambda k: ".".join(
            [
                hs256(WORKER).split(".")[0],
                b64url(b'{"worker_id":"boss"}'),
                hs256(WORKER).split(".")[2],
            ]
        ),
        "bad_signature",
    ),
    ("worker_id null", lambda k: hs256({**WORKER, "worker_id": None}), "bad_claim"),
    (
        "no worker_id",
        lambda k: hs256({"iat": int(NOW), "iss": "urn:openfn:worker"}),
        "missing_claim",
    ),
    ("missing iss", lambda k: hs256({"worker_id": "w", "iat": 1}), "missing_claim"),
    ("wrong issuer", lambda k: hs256({**WORKER, "iss": "Lightning"}), "wrong_issuer"),
    ("expired", lambda k: hs256({**WORKER, "exp": int(NOW) - 60}), "expired"),
    ("not yet valid", lambda k: hs256({**WORKER, "nbf": int(NOW) + 60}), "not_yet_valid"),
    ("iat not a number", lambda k: hs256({**WORKER, "iat": "now"}), "bad_claim"),
    ("garbage", lambda k: "garbage", "malformed"),
    ("not a string", lambda k: b"eyJ.x.y", "malformed"),
]


@pytest.mark.parametrize(
    ("case", "token", "code"), WORKER_ATTACKS, ids=[case for case, _, _ in WORKER_ATTACKS]
)
def test_worker_token_attacks_are_refused(
    key: RSAPrivateKey, case: str, token: Callable[[RSAPrivateKey], object], code: str
) -> None:
    with pytest.raises(TokenError) as info:
        verify_worker_token(token(key), SECRET, now=NOW)
    assert info.value.code == code, info.value.message


# -- run tokens -------------------------------------------------------------------------------


def test_run_token_claims(key: RSAPrivateKey) -> None:
    token = mint_run_token(key, RUN, now=NOW, run_timeout=300)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    claims = verify_run_token(token, key.public_key(), run_id=RUN, now=NOW, require_sub=True)
    assert claims == RunClaims(
        id=RUN, iss="Lightning", nbf=int(NOW), exp=int(NOW) + 300 + DEFAULT_GRACE, sub=f"run:{RUN}"
    )


def test_run_token_time_window_with_leeway(key: RSAPrivateKey) -> None:
    token = mint_run_token(key, RUN, now=NOW, run_timeout=60, grace=0)
    public = key.public_key()
    assert verify_run_token(token, public, run_id=RUN, now=NOW - 4.9)
    assert verify_run_token(token, public, run_id=RUN, now=NOW + 64.9)
    assert verify_run_token(token, public, run_id=RUN, now=NOW + 60, leeway=0.1)
    for now, code in ((NOW - 5.1, "not_yet_valid"), (NOW + 65, "expired")):
        with pytest.raises(TokenError) as info:
            verify_run_token(token, public, run_id=RUN, now=now)
        assert info.value.code == code


def test_lightning_mock_style_tokens_without_sub_pass_unless_sub_is_required(
    key: RSAPrivateKey,
) -> None:
    mock = rs256(key, run_claims(sub=None, iat=int(NOW), exp=int(NOW) + 7200))
    assert verify_run_token(mock, key.public_key(), run_id=RUN, now=NOW).sub is None
    with pytest.raises(TokenError) as info:
        verify_run_token(mock, key.public_key(), run_id=RUN, now=NOW, require_sub=True)
    assert info.value.code == "missing_claim"


def confusion(key: RSAPrivateKey) -> str:
    """HS256 signed with the public key's PEM as the HMAC secret: the classic confusion."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = compact({"alg": "HS256", "typ": "JWT"}, run_claims()).rsplit(".", 1)[0]
    signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def signed(key: RSAPrivateKey, header: Any, claims: Any) -> str:
    """Any header, properly signed with RS256: what only a header check can refuse."""
    unsigned = compact(header, claims).rsplit(".", 1)[0]
    signature = key.sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{unsigned}.{b64url(signature)}"


def tampered(key: RSAPrivateKey) -> str:
    head, _, signature = rs256(key, run_claims(id="other-run", sub="run:other-run")).split(".")
    return ".".join([head, b64url(json.dumps(run_claims()).encode()), signature])


RUN_ATTACKS: list[tuple[str, Callable[[RSAPrivateKey, RSAPrivateKey], object], str]] = [
    ("alg none", lambda k, o: compact({"alg": "none"}, run_claims()), "bad_algorithm"),
    ("HS256 with the public key", lambda k, o: confusion(k), "bad_algorithm"),
    ("RS512", lambda k, o: jwt.encode(run_claims(), k, algorithm="RS512"), "bad_algorithm"),
    ("expired", lambda k, o: rs256(k, run_claims(exp=int(NOW) - 60)), "expired"),
    ("not yet valid", lambda k, o: rs256(k, run_claims(nbf=int(NOW) + 60)), "not_yet_valid"),
    ("another run", lambda k, o: rs256(k, run_claims(id="r2", sub="run:r2")), "wrong_run"),
    ("sub of another run", lambda k, o: rs256(k, run_claims(sub="run:r2")), "wrong_run"),
    ("tampered payload", lambda k, o: tampered(k), "bad_signature"),
    ("another key", lambda k, o: rs256(o, run_claims()), "bad_signature"),
    ("missing exp", lambda k, o: rs256(k, run_claims(exp=None)), "missing_claim"),
    ("missing id", lambda k, o: rs256(k, run_claims(id=None)), "missing_claim"),
    ("wrong issuer", lambda k, o: rs256(k, run_claims(iss="urn:openfn:worker")), "wrong_issuer"),
    ("exp not a number", lambda k, o: rs256(k, run_claims(exp="later")), "bad_claim"),
    ("id not a string", lambda k, o: rs256(k, run_claims(id=7)), "bad_claim"),
    ("lightning-mock's placeholder", lambda k, o: "x.y.z", "malformed"),
    ("garbage", lambda k, o: "not a token", "malformed"),
    ("empty", lambda k, o: "", "malformed"),
    ("payload is an array", lambda k, o: jwt.PyJWS().encode(b"[1]", k, "RS256"), "malformed"),
    (
        "a critical header extension",
        lambda k, o: signed(k, {"alg": "RS256", "crit": ["b64"], "b64": False}, run_claims()),
        "malformed",
    ),
    ("a header that is a list", lambda k, o: signed(k, ["RS256"], run_claims()), "malformed"),
    ("padded segments", lambda k, o: rs256(k, run_claims()) + "==", "malformed"),
    ("four segments", lambda k, o: rs256(k, run_claims()) + ".e30", "malformed"),
    ("a signature of no base64 length", lambda k, o: rs256(k, run_claims()) + "aaa", "malformed"),
    ("a standard base64 signature", lambda k, o: rs256(k, run_claims())[:-2] + "+/", "malformed"),
    ("not a string", lambda k, o: {"token": "x"}, "malformed"),
]


@pytest.mark.parametrize(
    ("case", "token", "code"), RUN_ATTACKS, ids=[case for case, _, _ in RUN_ATTACKS]
)
def test_run_token_attacks_are_refused(
    key: RSAPrivateKey,
    other_key: RSAPrivateKey,
    case: str,
    token: Callable[[RSAPrivateKey, RSAPrivateKey], object],
    code: str,
) -> None:
    with pytest.raises(TokenError) as info:
        verify_run_token(token(key, other_key), key.public_key(), run_id=RUN, now=NOW)
    assert info.value.code == code, info.value.message


def test_every_refusal_code_is_exercised() -> None:
    codes = {code for _, _, code in WORKER_ATTACKS} | {code for _, _, code in RUN_ATTACKS}
    assert codes == set(TOKEN_ERRORS)


def test_refusals_do_not_echo_the_token(key: RSAPrivateKey) -> None:
    token = rs256(key, run_claims(id="r2", sub="run:r2"))
    with pytest.raises(TokenError) as info:
        verify_run_token(token, key.public_key(), run_id=RUN, now=NOW)
    assert token.split(".")[1] not in str(info.value)


@given(st.text() | st.binary() | st.none() | st.integers())
def test_any_input_is_a_token_or_a_token_error(token: object) -> None:
    for verify in (
        lambda: verify_worker_token(token, SECRET, now=NOW),
        lambda: verify_run_token(token, PUBLIC_FOR_FUZZ, run_id=RUN, now=NOW),
    ):
        try:
            verify()
        except TokenError as error:
            assert error.code in TOKEN_ERRORS


PUBLIC_FOR_FUZZ = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


# -- an independent implementation agrees ---------------------------------------------------------


def test_joserfc_accepts_our_tokens_and_we_accept_its(key: RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jose_key = RSAKey.import_key(pem)
    ours = jose_jwt.decode(mint_run_token(key, RUN, now=NOW, run_timeout=300), jose_key, ["RS256"])
    assert ours.claims["id"] == RUN and ours.claims["sub"] == f"run:{RUN}"
    theirs = jose_jwt.encode({"alg": "RS256"}, run_claims(), jose_key, ["RS256"])
    assert verify_run_token(theirs, key.public_key(), run_id=RUN, now=NOW).id == RUN

    secret = OctKey.import_key(SECRET.encode())
    worker = jose_jwt.decode(mint_worker_token(SECRET, "w", now=NOW), secret, ["HS256"])
    assert worker.claims == {"worker_id": "w", "iat": int(NOW), "iss": "urn:openfn:worker"}
    theirs = jose_jwt.encode({"alg": "HS256"}, WORKER, secret, ["HS256"])
    assert verify_worker_token(theirs, SECRET, now=NOW).worker_id == "w"
