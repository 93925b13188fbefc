"""The relying party's decisions of single sign-on: a provider's discovery document is
checked against the configured issuer, the authorization request carries PKCE S256, and an
ID token passes only with the provider's signature, our issuer, audience, nonce and time."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from fulmen.coordinator import oidc
from fulmen.errors import SignInError

ISSUER = "https://id.example.org"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
    "id_token_signing_alg_values_supported": ["RS256", "HS256"],
}
PROVIDER = oidc.provider_of(DOCUMENT, ISSUER)


@functools.cache
def key(name: str = "k1") -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*names: str) -> dict[str, Any]:
    keys = []
    for name in names or ("k1",):
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key(name).public_key()))
        keys.append(public | {"kid": name, "use": "sig", "alg": "RS256"})
    return {"keys": keys}


def token(
    *, signer: str = "k1", kid: str | None = "k1", algorithm: str = "RS256", **changes: Any
) -> str:
    claims = {
        "iss": ISSUER,
        "sub": "ada-sub",
        "aud": "fulmen",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "nonce": "the-nonce",
        "email": "ada@example.org",
        "email_verified": True,
    } | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key(signer), algorithm=algorithm, headers=headers)


def verify(
    signed: str, *, keys: dict[str, Any] | None = None, now: datetime = NOW
) -> oidc.Identity:
    return oidc.verify_id_token(
        signed,
        keys or jwks(),
        provider=PROVIDER,
        client_id="fulmen",
        nonce="the-nonce",
        now=now,
    )


def refused(signed: str, **options: Any) -> str:
    with pytest.raises(SignInError) as error:
        verify(signed, **options)
    assert error.value.code == "sso_token"
    return error.value.message


def test_a_token_of_the_provider_for_this_sign_in_passes() -> None:
    identity = verify(token(name="Ada"))
    assert identity == oidc.Identity("ada-sub", "ada@example.org", True, "Ada")
    assert verify(token(email_verified="true")).email_verified  # as Cognito writes it
    assert not verify(token(email_verified=None)).email_verified
    assert not verify(token(email_verified="yes")).email_verified
    # without a kid, each of the provider's keys is tried
    assert verify(token(kid=None), keys=jwks("k2", "k1")).subject == "ada-sub"


@pytest.mark.parametrize(
    ("signed", "said"),
    [
        (lambda: token(signer="evil"), "signature does not verify"),
        (lambda: token(kid="k9"), "a key the provider does not publish"),
        (lambda: token(iss="https://evil.example.org"), "another issuer"),
        (lambda: token(aud="another-client"), "another client"),
        (lambda: token(aud=["fulmen", "another-client"]), "azp"),
        (lambda: token(nonce="another-nonce"), "nonce"),
        (lambda: token(nonce=None), "nonce"),
        (lambda: token(sub=None), "'sub'"),
        (lambda: token(exp=int((NOW - timedelta(minutes=2)).timestamp())), "expired"),
        (lambda: token(iat=int((NOW + timedelta(minutes=5)).timestamp())), "not valid yet"),
        (lambda: token(exp="tomorrow"), "not a time"),
        (lambda: jwt.encode({"sub": "x"}, "", algorithm="none"), "'none'"),
        (lambda: "not a token", "not a signed JWT"),
    ],
    ids=[
        "another key",
        "unknown kid",
        "issuer",
        "audience",
        "several audiences without azp",
        "another nonce",
        "no nonce",
        "no subject",
        "expired",
        "issued in the future",
        "exp not a number",
        "unsigned",
        "garbage",
    ],
)
def test_a_token_failing_a_check_is_refused_saying_which(signed: Any, said: str) -> None:
    assert said in refused(signed())


def test_an_hmac_token_is_refused_though_the_provider_lists_hs256() -> None:
    """HS256 is keyed with the client secret: whoever has it could mint tokens."""
    forged = jwt.encode(
        {"iss": ISSUER, "sub": "x", "aud": "fulmen", "nonce": "the-nonce"},
        "the-client-secret-of-fulmen-0123456789abcdef",
        algorithm="HS256",
    )
    assert "'HS256'" in refused(forged)
    assert PROVIDER.algorithms == {"RS256"}


def test_a_token_for_several_audiences_naming_us_as_azp_passes() -> None:
    assert verify(token(aud=["fulmen", "other"], azp="fulmen")).email == "ada@example.org"


def test_the_leeway_is_a_minute() -> None:
    just = token(exp=int((NOW - timedelta(seconds=59)).timestamp()))
    assert verify(just).subject == "ada-sub"


def test_the_authorization_request_carries_pkce_state_and_nonce() -> None:
    begun = oidc.begin()
    assert len({begun.state, begun.nonce, begun.verifier}) == 3
    assert 43 <= len(begun.verifier) <= 128
    url = oidc.authorization_url(PROVIDER, "fulmen", "https://f.example/cb", begun)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(f"{ISSUER}/authorize?")
    assert query == {
        "response_type": "code",
        "client_id": "fulmen",
        "redirect_uri": "https://f.example/cb",
        "scope": "openid email profile",
        "state": begun.state,
        "nonce": begun.nonce,
        "code_challenge": oidc.challenge(begun.verifier),
        "code_challenge_method": "S256",
    }
    assert begun.verifier not in url
    assert begun.state not in repr(begun)


def test_the_s256_challenge_is_rfc_7636s() -> None:
    # RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oidc.challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"issuer": ISSUER + "/"}, "names another issuer"),
        ({"token_endpoint": None}, "has no token_endpoint"),
        ({"jwks_uri": "http://id.example.org/jwks"}, "jwks_uri is not an https:// URL"),
        ({"id_token_signing_alg_values_supported": ["HS256"]}, "signs ID tokens with none"),
    ],
)
def test_a_discovery_document_that_cannot_be_used_is_refused(
    changes: dict[str, Any], said: str
) -> None:
    document = {k: v for k, v in (DOCUMENT | changes).items() if v is not None}
    with pytest.raises(SignInError) as error:
        oidc.provider_of(document, ISSUER)
    assert error.value.code == "sso_provider" and said in error.value.message


def test_the_token_endpoint_takes_basic_unless_only_post_is_offered() -> None:
    assert PROVIDER.token_auth == "client_secret_basic"
    post = DOCUMENT | {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    assert oidc.provider_of(post, ISSUER).token_auth == "client_secret_post"
    assert oidc.discovery_url(ISSUER + "/") == f"{ISSUER}/.well-known/openid-configuration"


def test_a_token_naming_an_unknown_key_asks_for_the_keys_again() -> None:
    assert oidc.knows_key(token(), jwks())
    assert not oidc.knows_key(token(kid="k2"), jwks())
    assert oidc.knows_key(token(kid=None), jwks())
