"""OAuth2 credentials' decisions without I/O (coordinator/oauth2.py, issue 19): when a token
is refreshed, what a token endpoint's answer gives, what its refusals mean, and the
authorization request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from fulmen.coordinator import oauth2, oidc
from fulmen.errors import CredentialError, InputError
from fulmen.store import Grant, OAuth2Secrets

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CODE = oauth2.checked_settings(
    "authorization_code",
    token_url="https://p.example/token",
    client_id="c",
    authorization_url="https://p.example/authorize?tenant=t",
    scopes=["read", "write", "read"],
)
CLIENT = oauth2.checked_settings(
    "client_credentials", token_url="http://127.0.0.1:9/t", client_id="c"
)
HELD = OAuth2Secrets("secret", "at-1", "rt-1", "Bearer", "read")


@pytest.mark.parametrize(
    ("left", "refresh"),
    [
        (timedelta(minutes=10), False),
        (timedelta(minutes=5), False),
        (timedelta(minutes=4, seconds=59), True),
        (-timedelta(seconds=1), True),
    ],
)
def test_a_token_is_refreshed_within_five_minutes_of_its_expiry(
    left: timedelta, refresh: bool
) -> None:
    assert oauth2.needs_refresh(CODE, HELD, NOW + left, NOW) is refresh


def test_a_token_of_unknown_expiry_is_refreshed_only_if_it_can_be() -> None:
    assert oauth2.needs_refresh(CODE, HELD, None, NOW)
    assert not oauth2.needs_refresh(CODE, OAuth2Secrets("s", "at-1"), None, NOW)
    assert oauth2.needs_refresh(CLIENT, OAuth2Secrets("s", "at-1"), None, NOW)


def test_an_answer_keeps_the_refresh_token_the_provider_did_not_renew() -> None:
    fresh, expires = oauth2.tokens_of({"access_token": "at-2", "expires_in": "60"}, HELD, NOW)
    assert (fresh.access_token, fresh.refresh_token, fresh.client_secret) == (
        "at-2",
        "rt-1",
        "secret",
    )
    assert fresh.token_type == "Bearer" and fresh.scope == "read"
    assert expires == NOW + timedelta(seconds=60)
    at = int((NOW + timedelta(hours=1)).timestamp())
    renewed, expires = oauth2.tokens_of(
        {"access_token": "at-3", "refresh_token": "rt-2", "expires_at": at}, HELD, NOW
    )
    assert renewed.refresh_token == "rt-2" and expires == NOW + timedelta(hours=1)
    assert oauth2.tokens_of({"access_token": "at-4"}, HELD, NOW)[1] is None


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"access_token": 5}])
def test_an_answer_without_an_access_token_is_not_a_token(answer: dict[str, object]) -> None:
    with pytest.raises(CredentialError) as caught:
        oauth2.tokens_of(answer, HELD, NOW)
    assert caught.value.code == "provider_unavailable"


@pytest.mark.parametrize(
    ("status", "answer", "code"),
    [
        (400, {"error": "invalid_grant"}, "reauthorization_required"),
        (200, {"error": "invalid_grant"}, "reauthorization_required"),
        (401, {"error": "invalid_client"}, "reauthorization_required"),
        (429, {"error": "slow_down"}, "provider_unavailable"),
        (503, {}, "provider_unavailable"),
    ],
)
def test_what_a_refusal_means(status: int, answer: dict[str, object], code: str) -> None:
    assert oauth2.refusal(status, answer).code == code


def test_the_providers_words_are_kept_short_and_plain() -> None:
    said = oauth2.refusal(400, {"error": "<b>x</b>" * 20, "error_description": "y" * 500})
    assert "<" not in said.message and len(said.message) < 400


def test_the_authorization_request_uses_pkce_s256_and_the_state() -> None:
    url = oauth2.authorization_url(CODE, "https://f.example/ui/oauth2/callback", "st", "v" * 43)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["tenant"] == ["t"] and query["state"] == ["st"]
    assert query["code_challenge"] == [oidc.challenge("v" * 43)]
    assert query["code_challenge_method"] == ["S256"] and query["scope"] == ["read write"]


def test_the_refresh_form_of_each_grant() -> None:
    assert oauth2.refresh_form(CODE, HELD)["grant_type"] == "refresh_token"
    form = oauth2.refresh_form(CLIENT, HELD)
    assert form["grant_type"] == "client_credentials" and "refresh_token" not in form
    assert CODE.grant is Grant.AUTHORIZATION_CODE and CODE.scopes == ("read", "write")


@pytest.mark.parametrize(
    ("grant", "given", "field"),
    [
        ("implicit", {}, "grant"),
        ("client_credentials", {"token_url": "http://10.0.0.1/token"}, "token_url"),
        ("client_credentials", {"token_url": "https://p.example/t#x"}, "token_url"),
        ("client_credentials", {"token_url": "https:///t"}, "token_url"),
        ("authorization_code", {"authorization_url": "javascript:alert(1)"}, "authorization_url"),
        ("client_credentials", {"client_id": ""}, "client_id"),
        ("client_credentials", {"scopes": ["a\\b"]}, "scopes"),
    ],
)
def test_settings_refused_name_the_field(grant: str, given: dict[str, object], field: str) -> None:
    settings: dict[str, object] = {"token_url": "https://p.example/t", "client_id": "c"}
    if grant == "authorization_code":
        settings["authorization_url"] = "https://p.example/a"
    with pytest.raises(InputError) as caught:
        oauth2.checked_settings(grant, **(settings | given))  # type: ignore[arg-type]
    assert caught.value.code == "invalid_oauth2_settings" and caught.value.field == field
