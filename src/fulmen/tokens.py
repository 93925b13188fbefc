"""The two token layers (spec §2, §3): minting and verifying, with the caller's clock.

* **Worker token**: the worker proves it may connect. HS256 over the ``WORKER_SECRET``
  string's UTF-8 bytes, used as-is (never base64-decoded). Claims ``worker_id``, ``iat``,
  ``iss = "urn:openfn:worker"``; header ``{"alg":"HS256"}`` without ``typ``, as ws-worker's
  jose writes it, so the same inputs give ws-worker's token byte for byte. Real workers send
  no ``exp`` or ``nbf``, so verification checks them only when present; Fulmen may add ``exp``
  when it mints. ``iat`` is not checked against the clock: a worker's clock may be off, and
  Lightning does not check it either.
* **Run token**: the coordinator lets one worker work on one run. RS256 with the
  coordinator's private key; claims ``id``, ``sub = "run:<id>"``, ``iss = "Lightning"``,
  ``nbf = now`` and ``exp = now + run timeout + grace`` (spec §3.1 [VARIES]: we follow the
  newest Lightning rule, grace 10 s by default). Verified on both sides for signature, issuer,
  time and run id. ws-worker does not compare ``id`` with the run it claimed (a TODO in its
  source); Fulmen does, and checks ``sub`` whenever it is present. ``sub`` is required only by
  a verifier that asks for it (our coordinator): older Lightning does not send it.

Time: ``now`` is seconds since the epoch, given by the caller (STYLE.md P12). Both sides allow
``DEFAULT_LEEWAY`` seconds of clock skew, the 5 s ws-worker allows; Lightning's own run-token
check has none, which only matters to a worker whose clock runs ahead.

Algorithm confusion is impossible by construction: each verify path names exactly one
algorithm, which decoding checks the header's ``alg`` against before anything else, and takes
a key of the matching type (a ``str`` secret or an RSA public key object), so an HS256 token
signed with the public key, or ``alg: none``, is refused as ``bad_algorithm``.

Every refusal is a :class:`~fulmen.errors.TokenError` whose ``code`` is one of
``TOKEN_ERRORS``; its message names the claim but never echoes the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from typing import Final

import jwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from fulmen.errors import TokenError

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_LEEWAY",
    "RUN_ISSUER",
    "TOKEN_ERRORS",
    "WORKER_ISSUER",
    "RunClaims",
    "WorkerClaims",
    "check_run_claims",
    "mint_run_token",
    "mint_worker_token",
    "run_claims",
    "run_token_remedy",
    "sign_run_claims",
    "verify_run_token",
    "verify_worker_token",
]

WORKER_ISSUER: Final = "urn:openfn:worker"
RUN_ISSUER: Final = "Lightning"
DEFAULT_LEEWAY: Final = 5.0
DEFAULT_GRACE: Final = 10.0
"""``RUN_GRACE_PERIOD_SECONDS``' default in Lightning (§3.1, §10.5)."""

TOKEN_ERRORS: Final = (
    "malformed",  # not a string, not a JWS, or its parts are not base64url JSON
    "bad_algorithm",  # the header's alg is not the one this kind of token uses
    "bad_signature",  # signed with another key, or the header or payload was changed
    "missing_claim",  # a required claim is absent
    "bad_claim",  # a claim has the wrong JSON type
    "wrong_issuer",  # iss is not this kind of token's issuer
    "expired",  # exp has passed (beyond the leeway)
    "not_yet_valid",  # nbf is still ahead (beyond the leeway)
    "wrong_run",  # a run token for another run (id or sub)
)

_KEY_MISMATCH: Final = (
    "the worker's public key (WORKER_LIGHTNING_PUBLIC_KEY) does not match the key the "
    "coordinator signs run tokens with (WORKER_RUNS_PRIVATE_KEY): give the worker the "
    "coordinator's public key and restart it"
)
_CLOCKS: Final = (
    "the worker's clock and the coordinator's differ by more than the few seconds allowed: "
    "synchronise them (NTP)"
)
_REMEDIES: Final = {
    "bad_signature": _KEY_MISMATCH,
    "bad_algorithm": _KEY_MISMATCH,
    "expired": _CLOCKS,
    "not_yet_valid": _CLOCKS,
    "wrong_run": "the coordinator handed out a token for another run: a fault of the coordinator",
}


def run_token_remedy(code: str) -> str:
    """What to do when run tokens keep failing with ``code``, for the people who read the
    worker's log and the run's: one sentence, naming the setting at fault (issue 14)."""
    return _REMEDIES.get(
        code,
        "the coordinator does not sign run tokens as this worker expects: check that both "
        "use one key pair (the worker the public half, the coordinator the private one)",
    )


_HS256: Final = "HS256"
_RS256: Final = "RS256"
#: A JWS segment: unpadded base64url (RFC 7515 §2), as every issuer we know writes it.
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*")
_PKCS1: Final = padding.PKCS1v15()


@dataclass(frozen=True, slots=True)
class WorkerClaims:
    worker_id: str
    iat: int | float
    iss: str
    exp: int | float | None = None


@dataclass(frozen=True, slots=True)
class RunClaims:
    id: str
    iss: str
    nbf: int | float
    exp: int | float
    sub: str | None = None


# -- worker tokens ----------------------------------------------------------------------------


def mint_worker_token(
    secret: str, worker_id: str, *, now: float, lifetime: float | None = None
) -> str:
    """Sign a worker token as ws-worker does; with ``lifetime``, add ``exp = now + lifetime``."""
    claims: dict[str, object] = {"worker_id": worker_id, "iat": int(now), "iss": WORKER_ISSUER}
    if lifetime is not None:
        claims["exp"] = math.ceil(now + lifetime)
    return jwt.encode(claims, secret, algorithm=_HS256, headers={"typ": None})


def verify_worker_token(
    token: object, secret: str, *, now: float, leeway: float = DEFAULT_LEEWAY
) -> WorkerClaims:
    """Check a worker token against ``WORKER_SECRET``.

    Raises:
        TokenError: with a code from ``TOKEN_ERRORS``.
    """
    claims = _verified_claims(token, secret, _HS256)
    _require(claims, ("worker_id", "iat", "iss"))
    result = WorkerClaims(
        worker_id=_text(claims, "worker_id"),
        iat=_number(claims, "iat"),
        iss=_text(claims, "iss"),
        exp=_number(claims, "exp") if "exp" in claims else None,
    )
    _check_issuer(result.iss, WORKER_ISSUER)
    _check_time(claims, now, leeway)
    return result


# -- run tokens -------------------------------------------------------------------------------


def run_claims(
    run_id: str, *, now: float, run_timeout: float, grace: float = DEFAULT_GRACE
) -> RunClaims:
    """The claims of a run token valid from ``now`` for the run's timeout plus ``grace``."""
    return RunClaims(
        id=run_id,
        iss=RUN_ISSUER,
        nbf=int(now),
        exp=math.ceil(now + run_timeout + grace),
        sub=f"run:{run_id}",
    )


def mint_run_token(
    private_key: RSAPrivateKey,
    run_id: str,
    *,
    now: float,
    run_timeout: float,
    grace: float = DEFAULT_GRACE,
) -> str:
    """Sign a run token that is valid from ``now`` for the run's timeout plus ``grace``."""
    return sign_run_claims(
        private_key, run_claims(run_id, now=now, run_timeout=run_timeout, grace=grace)
    )


def sign_run_claims(private_key: RSAPrivateKey, claims: RunClaims) -> str:
    payload: dict[str, object] = {"id": claims.id}
    if claims.sub is not None:
        payload["sub"] = claims.sub
    payload |= {"iss": claims.iss, "nbf": claims.nbf, "exp": claims.exp}
    return jwt.encode(payload, private_key, algorithm=_RS256)


def verify_run_token(
    token: object,
    public_key: RSAPublicKey,
    *,
    run_id: str,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    require_sub: bool = False,
) -> RunClaims:
    """Check that ``token`` lets its bearer work on ``run_id`` at ``now``.

    Raises:
        TokenError: with a code from ``TOKEN_ERRORS``.
    """
    claims = _verified_claims(token, public_key, _RS256)
    _require(claims, ("id", "iss", "nbf", "exp", *(("sub",) if require_sub else ())))
    result = RunClaims(
        id=_text(claims, "id"),
        iss=_text(claims, "iss"),
        nbf=_number(claims, "nbf"),
        exp=_number(claims, "exp"),
        sub=_text(claims, "sub") if "sub" in claims else None,
    )
    return check_run_claims(result, run_id=run_id, now=now, leeway=leeway)


def check_run_claims(claims: RunClaims, *, run_id: str, now: float, leeway: float) -> RunClaims:
    """What :func:`verify_run_token` checks once the signature holds: issuer, time, run.

    Raises:
        TokenError: with a code from ``TOKEN_ERRORS``.
    """
    _check_issuer(claims.iss, RUN_ISSUER)
    _check_time({"exp": claims.exp, "nbf": claims.nbf}, now, leeway)
    if claims.id != run_id:
        raise TokenError("the run token is for another run (id)", code="wrong_run")
    if claims.sub is not None and claims.sub != f"run:{run_id}":
        raise TokenError("the run token is for another run (sub)", code="wrong_run")
    return claims


# -- shared checks ----------------------------------------------------------------------------


def _verified_claims(token: object, key: str | RSAPublicKey, algorithm: str) -> dict[str, object]:
    """The claims of a JWS in compact form signed with ``key`` by ``algorithm``; nothing of
    them is checked here.

    Read here rather than by PyJWT, which signs our tokens: its decode checks each character
    of each segment in Python and parses the header twice, and cost the worker 0.37M
    instructions per run (10% of all it does for a run; bench/instructions.py), where this
    costs a tenth of that. The cryptography is ``cryptography``'s, as in PyJWT.
    """
    if not isinstance(token, str):
        raise TokenError("a token must be a string", code="malformed")
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.fullmatch(part) for part in segments):
        raise TokenError("the token is not a JWT", code="malformed")
    header = _json_segment(segments[0], "the token is not a JWT")
    alg = header.get("alg")
    if alg != algorithm:
        raise TokenError(
            f"the token is signed with {alg!r}; only {algorithm} is accepted", code="bad_algorithm"
        )
    if "crit" in header:  # RFC 7515 §4.1.11: extensions a verifier must understand; we know none
        raise TokenError(
            "the token needs header extensions this check does not know", code="malformed"
        )
    signed = f"{segments[0]}.{segments[1]}".encode("ascii")
    try:
        signature = _unbase64(segments[2])
    except binascii.Error as exc:
        raise TokenError("the token is not a JWT", code="malformed") from exc
    if not _signature_holds(algorithm, key, signed, signature):
        raise TokenError("the token's signature does not verify", code="bad_signature")
    return _json_segment(
        segments[1], "the token is not a valid JWT: its claims are not a JSON object"
    )


def _json_segment(segment: str, fault: str) -> dict[str, object]:
    try:
        value = orjson.loads(_unbase64(segment))
    except (binascii.Error, orjson.JSONDecodeError) as exc:
        raise TokenError(fault, code="malformed") from exc
    if not isinstance(value, dict):
        raise TokenError(fault, code="malformed")
    return value


def _unbase64(segment: str) -> bytes:
    """Raises binascii.Error for a length no base64 text has."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _signature_holds(
    algorithm: str, key: str | RSAPublicKey, signed: bytes, signature: bytes
) -> bool:
    """Each algorithm takes one type of key, so a token cannot choose how it is checked."""
    if algorithm == _HS256 and isinstance(key, str):
        expected = hmac.new(key.encode(), signed, hashlib.sha256).digest()
        return hmac.compare_digest(expected, signature)
    if algorithm == _RS256 and isinstance(key, RSAPublicKey):
        try:
            key.verify(signature, signed, _PKCS1, hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    raise TypeError(f"no {algorithm} check with a {type(key).__name__} key")  # a caller's bug


def _require(claims: dict[str, object], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in claims:
            raise TokenError(f"the token has no {name!r} claim", code="missing_claim")


def _text(claims: dict[str, object], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str):
        raise TokenError(f"the token's {name!r} claim is not a string", code="bad_claim")
    return value


def _number(claims: dict[str, object], name: str) -> int | float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(f"the token's {name!r} claim is not a number", code="bad_claim")
    return value


def _check_issuer(issuer: str, expected: str) -> None:
    if issuer != expected:
        raise TokenError(f"the token's issuer is not {expected!r}", code="wrong_issuer")


def _check_time(claims: dict[str, object], now: float, leeway: float) -> None:
    if "exp" in claims and now >= _number(claims, "exp") + leeway:
        raise TokenError("the token has expired", code="expired")
    if "nbf" in claims and now + leeway < _number(claims, "nbf"):
        raise TokenError("the token is not valid yet", code="not_yet_valid")
