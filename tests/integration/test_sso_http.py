"""Single sign-on against a real OpenID Connect provider on loopback (authlib's, through
oidc-provider-mock), over HTTP: a sign-in comes back signed in as the user with the verified
e-mail; a callback this browser did not start, a token of another sign-in (nonce), a token
signed by a key the provider does not publish (or not signed, or signed with an HMAC), an
expired token, an unverified or unknown e-mail, and a provider that refuses are each refused
with a page that says why, and sign nobody in."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx2
import pytest

from fulmen.config import OidcSettings, Secret
from fulmen.store import AuditFilter, SQLStore
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import serve, sqlite_store
from fulmen_testing.oidc_provider import QUIET, OidcProvider, oidc_provider, resign
from fulmen_testing.sign_in import user

pytestmark = [pytest.mark.anyio, *QUIET]

CLIENT_SECRET = "the-client-secret-of-fulmen-0123456789abcdef"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with oidc_provider() as running:
        yield running


@dataclass
class Site:
    store: SQLStore
    http: httpx2.AsyncClient
    provider: OidcProvider
    clock: FakeClock

    async def begin(self, next: str = "/ui/runs") -> str:
        """Start a sign-in: the provider's authorization URL."""
        started = await self.http.get("/ui/login/sso", params={"next": next})
        assert started.status_code == 303, started.text
        return started.headers["location"]

    async def at_provider(self, authorize: str, sub: str) -> str:
        """Sign in at the provider as ``sub``: the callback URL it sends the browser to."""
        async with httpx2.AsyncClient() as browser_at_provider:
            answer = await browser_at_provider.post(authorize, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    async def come_back(self, callback: str) -> httpx2.Response:
        return await self.http.get(callback)

    async def sign_in(self, sub: str, next: str = "/ui/runs") -> httpx2.Response:
        return await self.come_back(await self.at_provider(await self.begin(next), sub))

    async def signed_in(self) -> bool:
        return (await self.http.get("/ui/runs")).status_code == 200


@pytest.fixture
async def site(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[Site]:
    provider.tamper = None
    clock = FakeClock()
    oidc = OidcSettings(
        issuer=provider.issuer,
        client_id="fulmen",
        client_secret=Secret("FULMEN_OIDC_CLIENT_SECRET", CLIENT_SECRET),
        name="Mock ID",
    )
    async with (
        sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store,
        serve(store, clock=clock, oidc=oidc) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        yield Site(store, http, provider, clock)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def text(answer: httpx2.Response) -> str:
    """The page's text as a person reads it (entities unescaped)."""
    return html.unescape(answer.text)


def refusal(answer: httpx2.Response) -> str:
    """The refusal's code, from the page that says why."""
    marker = 'data-code="'
    start = answer.text.index(marker) + len(marker)
    return answer.text[start : answer.text.index('"', start)]


async def test_a_sign_in_comes_back_signed_in_as_the_user_with_that_email(site: Site) -> None:
    ada = await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="Ada@Example.org", email_verified=True)
    login = await site.http.get("/ui/login")
    assert "Sign in with Mock ID" in login.text

    authorize = await site.begin("/ui/runs?state=failed")
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(site.provider.issuer + "/oauth2/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == ["fulmen"] and "openid" in query["scope"][0].split()
    assert query["redirect_uri"] == [str(site.http.base_url).rstrip("/") + "/ui/login/sso/callback"]
    state_cookie = next(c for c in site.http.cookies.jar if c.name == "fulmen_sso")
    assert state_cookie.value == query["state"][0] and state_cookie.path == "/ui/login/sso"
    assert CLIENT_SECRET not in authorize

    back = await site.come_back(await site.at_provider(authorize, "ada-sub"))
    assert back.status_code == 200, back.text
    # the page moves on by itself (a redirect would lose the SameSite=Strict cookie)
    assert 'http-equiv="refresh" content="0; url=/ui/runs?state=failed"' in back.text
    assert "fulmen_sso" not in site.http.cookies
    assert await site.signed_in()
    # the session is ada's, begun through single sign-on
    await site.store.set_instance_settings({"require_mfa": True})
    assert await site.signed_in()  # the provider answers for the second factor
    assert not (await site.store.get_user(ada.id)).totp_enabled
    # the audit trail has the sign-in, by single sign-on
    [record] = (await site.store.list_audit(AuditFilter(action="sign_in"))).items
    assert (record.action, record.actor.id, record.detail) == (
        "sign_in.succeeded",
        ada.id,
        {"method": "oidc"},
    )


async def test_a_callback_this_browser_did_not_start_is_refused(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    callback = await site.at_provider(await site.begin(), "ada-sub")

    # a state the browser's cookie does not hold (another sign-in's, or made up)
    forged = await site.come_back(with_query(callback, state="made-up-state"))
    assert forged.status_code == 400 and refusal(forged) == "sso_state"
    assert "not started in this browser" in forged.text
    [record] = (await site.store.list_audit(AuditFilter(action="sign_in"))).items
    assert (record.action, record.detail) == (
        "sign_in.failed",
        {"method": "oidc", "reason": "sso_state"},
    )

    # another browser (no cookie) brought this callback: login CSRF
    async with httpx2.AsyncClient(base_url=site.http.base_url) as other:
        planted = await other.get(callback)
    assert planted.status_code == 400 and refusal(planted) == "sso_state"
    assert "fulmen_session" not in other.cookies
    assert not await site.signed_in()


async def test_a_callback_is_taken_once(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    authorize = await site.begin()
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    callback = await site.at_provider(authorize, "ada-sub")
    assert (await site.come_back(callback)).status_code == 200
    site.http.cookies.clear()
    site.http.cookies.set("fulmen_sso", state, path="/ui/login/sso")  # the cookie kept, too
    replayed = await site.come_back(callback)
    assert replayed.status_code == 400 and refusal(replayed) == "sso_state"
    assert not await site.signed_in()


async def test_a_sign_in_older_than_ten_minutes_is_refused(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    callback = await site.at_provider(await site.begin(), "ada-sub")
    site.clock.advance(minutes=10)
    late = await site.come_back(callback)
    assert late.status_code == 400 and refusal(late) == "sso_state"
    assert "took longer than 10 minutes" in late.text


async def test_a_token_of_another_sign_in_is_refused_by_its_nonce(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    authorize = await site.begin()
    # the provider is asked for a token bearing another nonce than this sign-in's
    callback = await site.at_provider(with_query(authorize, nonce="another-sign-ins"), "ada-sub")
    answer = await site.come_back(callback)
    assert answer.status_code == 401 and refusal(answer) == "sso_token"
    assert "nonce" in answer.text
    assert not await site.signed_in()


@pytest.mark.parametrize(
    ("forge", "said"),
    [
        (lambda token: resign(token), "signature does not verify"),
        (lambda token: resign(token, algorithm="none"), "'none'"),
        (lambda token: resign(token, algorithm="HS256", key=CLIENT_SECRET), "'HS256'"),
    ],
    ids=["another key", "unsigned", "hmac with the client secret"],
)
async def test_a_token_the_provider_did_not_sign_is_refused(
    site: Site, forge: object, said: str
) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    site.provider.tamper = forge  # type: ignore[assignment]
    answer = await site.sign_in("ada-sub")
    assert answer.status_code == 401 and refusal(answer) == "sso_token", answer.text
    assert said in text(answer)
    assert not await site.signed_in()


async def test_an_expired_token_is_refused(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=True)
    # the coordinator's clock two hours on: the provider's tokens live for an hour
    site.clock.advance(hours=2)
    answer = await site.sign_in("ada-sub")
    assert answer.status_code == 401 and refusal(answer) == "sso_token"
    assert "expired" in answer.text


async def test_an_unverified_email_is_refused(site: Site) -> None:
    await user(site.store, "ada@example.org")
    await site.provider.user("ada-sub", email="ada@example.org", email_verified=False)
    answer = await site.sign_in("ada-sub")
    assert answer.status_code == 403 and refusal(answer) == "email_unverified"
    assert "has not verified your e-mail address ada@example.org" in answer.text
    # a subject without the claim at all: not verified either
    await site.provider.user("bare", email="ada@example.org")
    answer = await site.sign_in("bare")
    assert answer.status_code == 403 and refusal(answer) == "email_unverified"
    assert not await site.signed_in()


async def test_an_email_no_user_has_is_told_to_ask_for_an_invitation(site: Site) -> None:
    await site.provider.user("eve-sub", email="eve@example.org", email_verified=True)
    answer = await site.sign_in("eve-sub")
    assert answer.status_code == 403 and refusal(answer) == "no_account"
    assert "no Fulmen account for eve@example.org" in answer.text
    assert "ask an admin of this Fulmen for an invitation" in answer.text
    assert await site.store.find_user("eve@example.org") is None  # nobody was made
    assert not await site.signed_in()


async def test_a_refusal_at_the_provider_is_shown(site: Site) -> None:
    authorize = await site.begin()
    async with httpx2.AsyncClient() as at_provider:
        denied = await at_provider.post(authorize, data={"action": "deny"})
    answer = await site.come_back(denied.headers["location"])
    assert answer.status_code == 401 and refusal(answer) == "sso_refused"
    assert "Mock ID did not sign you in (access_denied)" in text(answer)
    # words in a link anyone can make are not shown as the provider's
    made_up = await site.http.get(
        "/ui/login/sso/callback",
        params={"error": "<b>denied</b>", "error_description": "Call 555 0100 to sign in"},
    )
    assert made_up.status_code == 401 and "Call 555" not in made_up.text
    assert "<b>" not in made_up.text


async def test_without_a_provider_there_is_no_button_and_no_sign_in(tmp_path: Path) -> None:
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        assert "Sign in with" not in (await http.get("/ui/login")).text
        answer = await http.get("/ui/login/sso")
        assert answer.status_code == 404 and "FULMEN_OIDC_ISSUER" in answer.text


@pytest.mark.parametrize("issuer", ["wrong", "closed"])
async def test_a_provider_that_cannot_be_used_is_named(
    tmp_path: Path, provider: OidcProvider, issuer: str
) -> None:
    """The provider's document names another issuer than the one configured, or nothing
    listens."""
    # the issuer is written with a slash the provider's own issuer does not have
    url = f"{provider.issuer}/" if issuer == "wrong" else "http://127.0.0.1:9"
    oidc = OidcSettings(url, "fulmen", Secret("FULMEN_OIDC_CLIENT_SECRET", CLIENT_SECRET))
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, oidc=oidc) as served,
        httpx2.AsyncClient(base_url=served.base_url) as http,
    ):
        answer = await http.get("/ui/login/sso")
    assert answer.status_code == 502 and refusal(answer) == "sso_provider"
    assert url in answer.text
    assert ("names another issuer" if issuer == "wrong" else "was not reached") in answer.text
