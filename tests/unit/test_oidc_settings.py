"""Single sign-on's settings: all of issuer, client id and secret or none, an https:// issuer
(http:// only on this machine), and errors that name the variable at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.config import CoordinatorSettings, OidcSettings, Secret
from fulmen.errors import ConfigError

FULL = {
    "FULMEN_OIDC_ISSUER": "https://id.example.org/realms/staff",
    "FULMEN_OIDC_CLIENT_ID": "fulmen",
    "FULMEN_OIDC_CLIENT_SECRET": "s3cret-value",
}


def test_without_any_of_them_there_is_no_single_sign_on() -> None:
    assert CoordinatorSettings.from_env({}).oidc is None


def test_the_three_of_them_configure_it() -> None:
    oidc = CoordinatorSettings.from_env(FULL | {"FULMEN_OIDC_NAME": "Okta"}).oidc
    assert oidc == OidcSettings(
        issuer="https://id.example.org/realms/staff",
        client_id="fulmen",
        client_secret=Secret("FULMEN_OIDC_CLIENT_SECRET", "s3cret-value"),
        name="Okta",
    )
    assert "s3cret-value" not in repr(oidc)
    by_file = {**FULL, "FULMEN_OIDC_CLIENT_SECRET": "", "FULMEN_OIDC_CLIENT_SECRET_FILE": "/s"}
    oidc = CoordinatorSettings.from_env(by_file).oidc
    assert oidc is not None and oidc.client_secret_file == "/s" and oidc.name == "SSO"


@pytest.mark.parametrize("left_out", sorted(FULL))
def test_one_left_out_is_named(left_out: str) -> None:
    env = {k: v for k, v in FULL.items() if k != left_out}
    with pytest.raises(ConfigError) as refused:
        CoordinatorSettings.from_env(env)
    assert f"{left_out} is not set" in refused.value.message
    assert "s3cret-value" not in refused.value.message


def test_a_secret_given_both_ways_is_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        CoordinatorSettings.from_env(FULL | {"FULMEN_OIDC_CLIENT_SECRET_FILE": "/s"})


@pytest.mark.parametrize(
    "issuer",
    [
        "http://id.example.org",  # the client secret and tokens in the clear
        "id.example.org",
        "https://",
        "https://id.example.org/?tenant=1",
        "https://id.example.org/#x",
        "https://[::1",
        "ftp://id.example.org",
    ],
)
def test_an_issuer_that_is_not_a_secure_url_is_refused(issuer: str) -> None:
    with pytest.raises(ConfigError) as refused:
        CoordinatorSettings.from_env(FULL | {"FULMEN_OIDC_ISSUER": issuer})
    assert refused.value.code == "bad_url" and "FULMEN_OIDC_ISSUER" in refused.value.message


@pytest.mark.parametrize(
    "issuer", ["http://localhost:5556", "http://127.0.0.1:8080/realms/x", "http://[::1]:9"]
)
def test_plain_http_is_allowed_on_this_machine(issuer: str) -> None:
    oidc = CoordinatorSettings.from_env(FULL | {"FULMEN_OIDC_ISSUER": issuer}).oidc
    assert oidc is not None and oidc.issuer == issuer


def test_the_secret_file_is_read_when_the_coordinator_starts(tmp_path: Path) -> None:
    from fulmen.coordinator.oidc_client import OidcClient

    secret = tmp_path / "oidc-secret"
    env = {**FULL, "FULMEN_OIDC_CLIENT_SECRET": "", "FULMEN_OIDC_CLIENT_SECRET_FILE": str(secret)}
    settings = CoordinatorSettings.from_env(env)
    with pytest.raises(ConfigError) as missing:
        OidcClient.from_settings(settings)
    assert str(secret) in missing.value.message and "cannot be read" in missing.value.message
    secret.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        OidcClient.from_settings(settings)
    secret.write_text("s3cret-from-a-file\n")
    client = OidcClient.from_settings(settings)
    assert client is not None and client.name == "SSO"
    assert OidcClient.from_settings(CoordinatorSettings.from_env({})) is None
