"""Single sign-on with OpenID Connect, the relying party's decisions (issue 18), without I/O:
what a provider's discovery document must say, the authorization request (code flow, PKCE
S256, state, nonce), and the checks of the ID token that comes back. The HTTP calls are
oidc_client.py's; the routes are dashboard/sso.py's.

Why these checks (OpenID Connect Core 1.0 §3.1.3.7, "ID Token Validation"):

* the signature, by a key of the provider's JWKS and an asymmetric algorithm the provider
  says it uses: never ``none``, never an HMAC (a key the client knows would let it, or anyone
  who learns the client secret, mint tokens), so the ``alg`` in the token cannot choose a
  weaker check (:data:`ALGORITHMS`);
* ``iss`` is exactly the configured issuer; ``aud`` holds our client id, and a token for
  several audiences names us as ``azp``;
* ``exp`` is ahead of now (``iat`` and ``nbf`` not far ahead), with :data:`LEEWAY` for clocks;
* ``nonce`` is the one this sign-in sent: a token minted for another sign-in (replayed, or
  injected into this one) does not pass.

The state (a random value in the redirect and in a cookie of this browser) stops a callback
that this browser did not start (login CSRF), and PKCE (RFC 7636) makes a code caught on its
way back useless without the verifier that never left the coordinator.

Refusals are :class:`~fulmen.errors.SignInError`: ``sso_provider`` (the provider or its
documents cannot be used), ``sso_token`` (the ID token fails a check; the message says which,
never quoting the token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlencode, urlsplit

import jwt

from fulmen.errors import SignInError

__all__ = [
    "ALGORITHMS",
    "LEEWAY",
    "LOOPBACK",
    "SCOPES",
    "Begun",
    "Identity",
    "Provider",
    "authorization_url",
    "begin",
    "challenge",
    "discovery_url",
    "knows_key",
    "provider_of",
    "verify_id_token",
]

#: The signature algorithms an ID token may use: asymmetric ones only (see the docstring).
ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY: Final = timedelta(seconds=60)
SCOPES: Final = "openid email profile"
#: The hosts a plain http:// URL may name (a provider on this machine, in tests).
LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})

TokenAuth = Literal["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True, slots=True)
class Provider:
    """What Fulmen uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    #: The ID token algorithms the provider uses that Fulmen accepts.
    algorithms: frozenset[str]
    #: How the client authenticates at the token endpoint (basic, unless only post is offered).
    token_auth: TokenAuth


@dataclass(frozen=True, slots=True)
class Begun:
    """One sign-in's secrets: ``state`` goes to the provider and into the browser's cookie,
    ``nonce`` into the ID token, ``verifier`` stays here until the code is exchanged."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    subject: str
    email: str
    email_verified: bool
    name: str = ""


def discovery_url(issuer: str) -> str:
    """Where the provider's discovery document is (OpenID Connect Discovery 1.0 §4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def provider_of(document: object, issuer: str) -> Provider:
    """The provider a discovery document describes, checked against the configured issuer.

    Raises:
        SignInError: ``sso_provider``, naming what is missing or wrong.
    """
    if not isinstance(document, Mapping):
        raise _provider(issuer, "its discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        # Discovery §4.3: the document must name the issuer it was fetched for, exactly.
        raise _provider(
            issuer, f"its discovery document names another issuer ({document.get('issuer')!r})"
        )
    plain = urlsplit(issuer).scheme == "http"
    endpoints = {
        name: _endpoint(document, name, issuer, plain)
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
    }
    offered = document.get("id_token_signing_alg_values_supported", ["RS256"])
    usable = frozenset(a for a in offered if isinstance(a, str)) & ALGORITHMS
    if not isinstance(offered, list) or not usable:
        raise _provider(
            issuer,
            f"it signs ID tokens with none of {', '.join(sorted(ALGORITHMS))} (it offers "
            f"{offered!r})",
        )
    methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    methods = methods if isinstance(methods, list) else []
    auth: TokenAuth = "client_secret_basic"
    if "client_secret_basic" not in methods and "client_secret_post" in methods:
        auth = "client_secret_post"
    return Provider(issuer=issuer, algorithms=usable, token_auth=auth, **endpoints)


def challenge(verifier: str) -> str:
    """PKCE's S256 code challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin() -> Begun:
    """New secrets for one sign-in: 256 random bits each (a verifier of 43 characters,
    within RFC 7636's 43 to 128)."""
    return Begun(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(32),
    )


def authorization_url(provider: Provider, client_id: str, redirect_uri: str, begun: Begun) -> str:
    """Where the browser goes to sign in: the code flow, with PKCE S256, state and nonce."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": begun.state,
            "nonce": begun.nonce,
            "code_challenge": challenge(begun.verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if urlsplit(provider.authorization_endpoint).query else "?"
    return f"{provider.authorization_endpoint}{separator}{query}"


def knows_key(token: str, jwks: Mapping[str, Any]) -> bool:
    """Whether ``jwks`` has the key ``token``'s header names (``False`` for a token whose
    header cannot be read): a provider that rotated its keys is asked for them again."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return True  # verify_id_token refuses it; fetching keys again would not help
    return kid is None or any(key.get("kid") == kid for key in _keys(jwks))


def verify_id_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    provider: Provider,
    client_id: str,
    nonce: str,
    now: datetime,
) -> Identity:
    """The identity an ID token vouches for, once every check of the module docstring holds.

    Raises:
        SignInError: ``sso_token``, saying which check failed.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _token("it is not a signed JWT") from None
    alg = header.get("alg")
    if alg not in provider.algorithms:
        raise _token(
            f"it is signed with {alg!r}, not one of {', '.join(sorted(provider.algorithms))}"
        )
    claims = _verified(token, jwks, alg, header.get("kid"), provider.issuer, client_id)
    _check_time(claims, now)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise _token("it is for several clients and does not name this one as its party (azp)")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise _token("its nonce is not this sign-in's (a token of another sign-in)")
    email = claims.get("email")
    verified = claims.get("email_verified")
    return Identity(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else "",
        # Some providers send the JSON string "true" (AWS Cognito did).
        email_verified=verified is True or verified == "true",
        name=claims["name"] if isinstance(claims.get("name"), str) else "",
    )


def _verified(
    token: str, jwks: Mapping[str, Any], alg: str, kid: object, issuer: str, client_id: str
) -> dict[str, Any]:
    """The claims, once the signature holds with one of the provider's keys (the one named
    by ``kid``, or each signing key when the token names none) and iss and aud are ours."""
    candidates = [
        key
        for key in _keys(jwks)
        if key.get("use", "sig") == "sig" and (kid is None or key.get("kid") == kid)
    ]
    if not candidates:
        raise _token("it is signed with a key the provider does not publish")
    for candidate in candidates:
        try:
            key = jwt.PyJWK(dict(candidate), algorithm=alg).key
            return jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    # time is checked with the coordinator's clock (_check_time)
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidAudienceError:
            raise _token("it was issued for another client (aud)") from None
        except jwt.InvalidIssuerError:
            raise _token("it was issued by another issuer (iss)") from None
        except jwt.MissingRequiredClaimError as missing:
            raise _token(f"it has no {missing.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise _token(f"it is not a valid ID token ({type(error).__name__})") from None
    raise _token("its signature does not verify with the provider's keys")


def _check_time(claims: Mapping[str, Any], now: datetime) -> None:
    moment = now.timestamp()
    leeway = LEEWAY.total_seconds()
    for name in ("exp", "iat", *(("nbf",) if "nbf" in claims else ())):
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _token(f"its {name!r} claim is not a time")
    if moment >= claims["exp"] + leeway:
        raise _token("it has expired (exp)")
    if claims["iat"] > moment + leeway or claims.get("nbf", 0) > moment + leeway:
        raise _token("it is not valid yet (iat, nbf): is this machine's clock right?")


def _keys(jwks: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    keys = jwks.get("keys")
    return [k for k in keys if isinstance(k, Mapping)] if isinstance(keys, list) else []


def _endpoint(document: Mapping[str, Any], name: str, issuer: str, plain: bool) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise _provider(issuer, f"its discovery document has no {name}")
    parts = urlsplit(value)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and plain and parts.hostname in LOOPBACK
    )
    if not parts.hostname or not secure:
        raise _provider(issuer, f"its {name} is not an https:// URL ({value!r})")
    return value


def _provider(issuer: str, what: str) -> SignInError:
    return SignInError(f"the sign-in provider {issuer} cannot be used: {what}", code="sso_provider")


def _token(what: str) -> SignInError:
    return SignInError(f"the provider's ID token was refused: {what}", code="sso_token")
