"""Signing in as a user, over real HTTP on loopback (issue 18): with an e-mail address and a
password once a user exists (and no longer with a token), one refusal for a wrong address
or password, nothing for a disabled account, a rate limit per account and per address that
refuses without checking the password and says when to try again, the second factor's
page for a user who has one (enrolled on their account page, then a code), and a password
change that signs out every other browser; each attempt and the change in the audit trail."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx2
import pyotp
import pytest

from fulmen.coordinator.passwords import hash_password
from fulmen.coordinator.sign_in import BAD_CREDENTIALS
from fulmen.store import AuditFilter, NewUser, SQLStore, User
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import api_token, serve, sqlite_store

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"
MINUTE = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    store: SQLStore
    base_url: str
    clock: FakeClock

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.base_url}

    def browser(self) -> httpx2.AsyncClient:
        # Sign-in checks a password (argon2id): on a loaded two-core machine a request has
        # taken over httpx's default five seconds.
        return httpx2.AsyncClient(base_url=self.base_url, timeout=30)

    async def user(self, email: str, *, admin: bool = False, password: str = PASSWORD) -> User:
        new = NewUser(email, password_hash=await hash_password(password), instance_admin=admin)
        return await self.store.create_user(new)

    async def sign_in(
        self, browser: httpx2.AsyncClient, email: str, password: str = PASSWORD, **form: str
    ) -> httpx2.Response:
        data = {"email": email, "password": password, **form}
        return await browser.post("/ui/login", data=data, headers=self.origin)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = FakeClock()
    path = tmp_path / "fulmen.db"
    async with (
        sqlite_store(str(path), clock=clock) as store,
        serve(store, clock=clock, sign_in_account_limit=3, sign_in_address_limit=5) as served,
    ):
        yield Site(store, served.base_url, clock)


def alert(html: str) -> str:
    """The sign-in page's refusal, as a reader sees it."""
    found = re.search(r'<p class="alert" role="alert">(.*?)</p>', html, re.S)
    assert found, html
    return unescape(found.group(1)).strip()


async def test_once_a_user_exists_the_page_takes_a_password_and_no_token(site: Site) -> None:
    token = await api_token(site.store)
    async with site.browser() as browser:
        page = (await browser.get("/ui/login")).text
        assert 'id="token"' in page and 'id="email"' not in page
        await site.user("ada@example.org", admin=True)
        page = (await browser.get("/ui/login")).text
        assert 'id="email"' in page and 'id="password"' in page and 'id="token"' not in page
        assert "Sign in with SSO" not in page  # the SSO block shows only when it is set up

        refused = await browser.post("/ui/login", data={"token": token}, headers=site.origin)
        assert refused.status_code == 401
        assert "an API token is for the REST API" in alert(refused.text)
        assert "fulmen_session" not in browser.cookies
        # ...while the token, now the first admin's, still works where it is for.
        api = await browser.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
        assert api.status_code == 200


async def test_a_right_password_signs_in_and_lands_where_asked(site: Site) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        asked = await browser.get("/ui/runs?state=failed")
        assert asked.status_code == 303 and "/ui/login?next=" in asked.headers["location"]
        signed = await site.sign_in(browser, " Ada@Example.ORG ", next="/ui/runs?state=failed")
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/runs?state=failed"
        assert (await browser.get("/ui/runs")).status_code == 200
        assert (await browser.get("/ui/account")).status_code == 200
        # another site as "next" is not followed
        other = await site.sign_in(browser, "ada@example.org", next="https://evil.example/")
        assert other.headers["location"] == "/ui"


async def test_a_wrong_address_and_a_wrong_password_are_refused_alike(site: Site) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        wrong_password = await site.sign_in(browser, "ada@example.org", "not the password")
        nobody = await site.sign_in(browser, "nobody@example.org")
        not_an_address = await site.sign_in(browser, "ada")
        for refused in (wrong_password, nobody, not_an_address):
            assert refused.status_code == 401
            assert alert(refused.text) == BAD_CREDENTIALS
            assert "fulmen_session" not in browser.cookies
        # what was typed as the address is kept; the password never is
        assert 'value="ada@example.org"' in wrong_password.text
        assert "not the password" not in wrong_password.text
        # no more than three failures (this site's limit) were counted for ada's account
        assert (await site.sign_in(browser, "ada@example.org")).status_code == 303


async def test_a_disabled_user_cannot_sign_in(site: Site) -> None:
    await site.user("admin@example.org", admin=True)
    ada = await site.user("ada@example.org")
    await site.store.set_user_disabled(ada.id, True)
    async with site.browser() as browser:
        right = await site.sign_in(browser, "ada@example.org")
        assert right.status_code == 401 and "disabled" in alert(right.text)
        wrong = await site.sign_in(browser, "ada@example.org", "not the password")
        assert alert(wrong.text) == BAD_CREDENTIALS  # only the password's holder learns more
        await site.store.set_user_disabled(ada.id, False)
        assert (await site.sign_in(browser, "ada@example.org")).status_code == 303


async def test_too_many_failures_refuse_the_account_unchecked_until_they_age(
    site: Site,
) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        for _ in range(3):
            assert (await site.sign_in(browser, "ada@example.org", "guess")).status_code == 401
        site.clock.advance(5 * MINUTE)
        # The right password now: refused without being checked, saying when to come back.
        limited = await site.sign_in(browser, "ada@example.org")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == str(10 * 60)
        message = alert(limited.text)
        assert message.startswith("Too many failed sign-ins: try again in 10 minutes (at ")
        assert "fulmen_session" not in browser.cookies
        site.clock.advance(10 * MINUTE)
        assert (await site.sign_in(browser, "ada@example.org")).status_code == 303


async def test_too_many_failures_from_one_address_refuse_every_account_from_it(
    site: Site,
) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        for n in range(5):  # a password tried on five accounts, from one address
            tried = await site.sign_in(browser, f"user{n}@example.org", "Summer2026!")
            assert tried.status_code == 401
        limited = await site.sign_in(browser, "ada@example.org")
        assert limited.status_code == 429 and "Too many failed sign-ins" in alert(limited.text)
        # A success from elsewhere is no one's business here: the address waits its turn.
        site.clock.advance(15 * MINUTE)
        assert (await site.sign_in(browser, "ada@example.org")).status_code == 303


async def test_a_user_with_a_second_factor_goes_on_to_it(site: Site) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        await site.sign_in(browser, "ada@example.org")
        shown = (await browser.get("/ui/account/mfa")).text  # enrol, as ada would
        secret = re.search(r'<code id="secret" class="mono">([A-Z2-7]+)</code>', shown)
        assert secret, shown

        def code() -> str:
            return pyotp.TOTP(secret[1]).at(site.clock.now().timestamp())

        enrolled = await browser.post("/ui/account/mfa", data={"code": code()}, headers=site.origin)
        assert enrolled.status_code == 201, enrolled.text
        await browser.post("/ui/logout", headers=site.origin)

        signed = await site.sign_in(browser, "ada@example.org", next="/ui/runs")
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/login/mfa?next=/ui/runs"
        # Half signed in opens nothing else.
        assert (await browser.get("/ui/runs")).status_code == 303
        assert (await browser.get("/ui/account")).status_code == 303
        site.clock.advance(30)  # the next code: the one that enrolled is taken
        given = await browser.post(
            "/ui/login/mfa", data={"code": code(), "next": "/ui/runs"}, headers=site.origin
        )
        assert given.status_code == 303 and given.headers["location"] == "/ui/runs"
        assert (await browser.get("/ui/runs")).status_code == 200


async def test_a_password_change_signs_out_the_other_sessions(site: Site) -> None:
    await site.user("ada@example.org")
    async with site.browser() as laptop, site.browser() as phone:
        await site.sign_in(laptop, "ada@example.org")
        await site.sign_in(phone, "ada@example.org")

        async def change(current: str, password: str, repeat: str) -> httpx2.Response:
            form = {"current": current, "password": password, "repeat": repeat}
            return await laptop.post("/ui/account/password", data=form, headers=site.origin)

        new = "a new password, longer"
        refused = await change("wrong", new, new)
        assert refused.status_code == 401 and "not your current password" in refused.text
        assert (await change(PASSWORD, new, new + "!")).status_code == 422
        weak = await change(PASSWORD, "short", "short")
        assert weak.status_code == 422 and "at least 10 characters" in weak.text
        assert PASSWORD not in weak.text and new not in refused.text
        assert (await phone.get("/ui")).status_code == 200  # nothing changed yet

        done = await change(PASSWORD, new, new)
        assert done.status_code == 303 and done.headers["location"] == "/ui/account?done=password"
        assert "other sessions are signed out" in (await laptop.get(done.headers["location"])).text
        assert (await phone.get("/ui")).status_code == 303  # signed out
        assert (await site.sign_in(phone, "ada@example.org")).status_code == 401
        assert (await site.sign_in(phone, "ada@example.org", new)).status_code == 303


async def test_a_password_change_from_another_site_is_refused(site: Site) -> None:
    await site.user("ada@example.org")
    async with site.browser() as browser:
        await site.sign_in(browser, "ada@example.org")
        form = {"current": PASSWORD, "password": "x" * 12 + "yz", "repeat": "x" * 12 + "yz"}
        forged = await browser.post(
            "/ui/account/password", data=form, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        assert (await site.sign_in(browser, "ada@example.org")).status_code == 303


async def test_every_sign_in_and_password_change_is_in_the_audit_trail(site: Site) -> None:
    ada = await site.user("ada@example.org")
    async with site.browser() as browser:
        await site.sign_in(browser, "nobody@example.org", "guess one")
        for n in range(3):
            await site.sign_in(browser, "ada@example.org", f"guess {n}")
        await site.sign_in(browser, "ada@example.org")  # rate-limited
        site.clock.advance(15 * MINUTE)
        await site.sign_in(browser, "ada@example.org")
        new = "a new password, longer"
        form = {"current": PASSWORD, "password": new, "repeat": new}
        await browser.post("/ui/account/password", data=form, headers=site.origin)

    records = (await site.store.list_audit(AuditFilter(), limit=50)).items[::-1]
    seen = [
        (r.action, r.actor.kind, r.actor.name, (r.detail or {}).get("reason"))
        for r in records
        if r.action.startswith(("sign_in.", "user."))
    ]
    assert seen == [
        ("sign_in.failed", "anonymous", "nobody@example.org", "bad_credentials"),
        *[("sign_in.failed", "anonymous", "ada@example.org", "bad_credentials")] * 3,
        ("sign_in.failed", "anonymous", "ada@example.org", "rate_limited"),
        ("sign_in.succeeded", "user", "ada@example.org", None),
        ("sign_in.succeeded", "user", "ada@example.org", None),  # the current password
        ("user.password_changed", "user", "ada@example.org", None),
    ]
    assert records[-1].target.id == ada.id
    assert all(r.actor.address == "127.0.0.1" for r in records)
    text = repr(records)
    assert PASSWORD not in text and "guess" not in text and "longer" not in text
