"""Run tokens as the coordinator hands them out and takes them back (spec §3).

A token is minted for every claimed run (RS256, as Lightning's protocol has it: an OpenFn
ws-worker verifies it with the public key), and the worker presents it when it joins the
run's channel, moments later, to the coordinator that minted it. Checking that signature
again cost as much as making it, plus PyJWT's parsing: about a tenth of the coordinator's
CPU per run. So the tokens this process minted are remembered (a digest of each, with its
claims; the latest :data:`REMEMBERED`, as many runs as ``memory.py`` keeps), and a token that
is one of them is checked against its claims alone: issuer, time and run, the same checks
and the same refusals. A token it did not mint here (another coordinator on the same
database, a restart in between, a forgery) is verified in full, signature first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from typing import Final

import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from fulmen.errors import TokenError
from fulmen.tokens import RunClaims, check_run_claims, run_claims, sign_run_claims
from fulmen.tokens import verify_run_token as verify_signed

__all__ = ["REMEMBERED", "RunTokens"]

REMEMBERED: Final = 4096


class RunTokens:
    """Mints run tokens with the coordinator's key and checks the ones workers present."""

    def __init__(self, private_key: RSAPrivateKey, *, remembered: int = REMEMBERED) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self._limit = remembered
        self._minted: OrderedDict[bytes, RunClaims] = OrderedDict()

    def mint(self, run_id: str, *, now: float, run_timeout: float, grace: float) -> str:
        claims = run_claims(run_id, now=now, run_timeout=run_timeout, grace=grace)
        token = sign_run_claims(self._private_key, claims)
        self._minted[_digest(token)] = claims
        while len(self._minted) > self._limit:
            self._minted.popitem(last=False)
        return token

    def verify(self, token: object, *, run_id: str, now: float) -> RunClaims:
        """The claims of ``token`` if it lets its bearer work on ``run_id`` now; no leeway,
        ``sub`` required: the coordinator's own clock and tokens.

        Raises:
            TokenError: as :func:`fulmen.tokens.verify_run_token`.
        """
        claims = self._minted.get(_digest(token)) if isinstance(token, str) else None
        if claims is not None:
            return check_run_claims(claims, run_id=run_id, now=now, leeway=0)
        return verify_signed(
            token, self._public_key, run_id=run_id, now=now, leeway=0, require_sub=True
        )

    def verify_any(self, token: object, *, now: float) -> RunClaims:
        """The claims of ``token`` if it lets its bearer work on the run it names, now: what
        a job presents to the collections API (collections_api.py), where no run is known
        beforehand. The run is read from the token, then everything is checked as
        :meth:`verify` checks it for that run (the signature too, for a token not minted
        here).

        Raises:
            TokenError: as :meth:`verify`; ``malformed`` for a token that names no run.
        """
        return self.verify(token, run_id=_claimed_run(token), now=now)


def _claimed_run(token: object) -> str:
    """The ``id`` claim of a JWS in compact form, unverified: only which run to check for."""
    parts = token.split(".") if isinstance(token, str) else []
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (IndexError, binascii.Error, ValueError):
        raise TokenError("the run token is not a JWT", code="malformed") from None
    run_id = claims.get("id") if isinstance(claims, dict) else None
    if not isinstance(run_id, str) or len(parts) != 3:
        raise TokenError("the run token names no run", code="malformed")
    return run_id


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
