"""Signing in with a second factor and through single sign-on, in headless Chromium (Debian's
/usr/bin/chromium through Playwright, nothing downloaded) against a coordinator on 127.0.0.1
and an OpenID Connect provider on localhost: another site, as a real provider is.

* Single sign-on: the sign-in page's button, the provider's own page, and back signed in on
  the page asked for (the session cookie is SameSite=Strict: this is where a redirect chain
  begun on the provider's site would have lost it).
* The instance requires a second factor: a user signed in without one lands on the
  enrolment page whatever they open, scans (reads) the key, types a code, sees ten recovery
  codes once, and goes on; then signs in again with a code from the app.

Codes are computed with pyotp at the coordinator's clock, which the test moves on by a step
rather than waiting for one. Nothing on any page is refused by the Content-Security-Policy.
Screenshots go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from fulmen.config import OidcSettings, Secret
from fulmen_testing.browser import LAPTOP, PHONE, chromium, shot
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import Served, serve, sqlite_store
from fulmen_testing.oidc_provider import QUIET, OidcProvider, oidc_provider
from fulmen_testing.sign_in import browser_cookie, open_session, user

pytestmark = [pytest.mark.anyio, *QUIET]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Served, OidcProvider, FakeClock]]:
    clock = FakeClock()
    with oidc_provider() as provider:
        oidc = OidcSettings(
            issuer=provider.issuer,
            client_id="fulmen",
            client_secret=Secret("FULMEN_OIDC_CLIENT_SECRET", "a-client-secret-of-some-length"),
            name="Mock ID",
        )
        async with (
            sqlite_store(str(tmp_path / "fulmen.db"), clock=clock) as store,
            serve(store, clock=clock, oidc=oidc) as served,
        ):
            yield served, provider, clock


async def context(browser: Any, problems: list[str], device: dict[str, Any] = LAPTOP) -> Any:
    """A browser context that notes CSP refusals and console errors, and reaches nothing
    beyond loopback (the provider's page asks a CDN for its stylesheet)."""
    opened = await browser.new_context(**device)
    await opened.route("**/cdn.jsdelivr.net/**", lambda route: route.abort())

    def note(message: Any) -> None:
        if "Content Security Policy" in message.text or (
            message.type == "error"
            and "cdn.jsdelivr.net" not in message.text
            and "net::ERR_FAILED" not in message.text
        ):
            problems.append(message.text)

    opened.on("console", note)
    return opened


async def test_single_sign_on_comes_back_signed_in(
    browser: Any, world: tuple[Served, OidcProvider, FakeClock]
) -> None:
    served, provider, _ = world
    store = served.coordinator.store
    await user(store, "ada@example.org")
    await provider.user("ada-sub", email="ada@example.org", email_verified=True, name="Ada")
    problems: list[str] = []
    browsing = await context(browser, problems)
    page = await browsing.new_page()

    await page.goto(f"{served.base_url}/ui/runs?state=failed")
    assert "/ui/login" in page.url
    await shot(page, "sso-sign-in-laptop")
    await page.click("text=Sign in with Mock ID")
    await page.wait_for_url(f"{provider.issuer}/oauth2/authorize**")
    await page.fill("input[name=sub]", "ada-sub")
    await page.click("button:has-text('Authorize')")
    await page.wait_for_url(f"{served.base_url}/ui/runs?state=failed")
    await page.locator("h1", has_text="Runs").wait_for()
    assert await page.locator("form.signout").count() == 1  # the signed-in header
    assert problems == []
    await browsing.close()


async def test_required_second_factor_enrolment_then_sign_in_with_a_code(
    browser: Any, world: tuple[Served, OidcProvider, FakeClock]
) -> None:
    served, _, clock = world
    store = served.coordinator.store
    ada = await user(store, "ada@example.org")
    await store.set_instance_settings({"require_mfa": True})
    problems: list[str] = []

    for name, device in (("phone", PHONE), ("laptop", LAPTOP)):
        browsing = await context(browser, problems, device)
        session = await open_session(store, ada.id)
        await browsing.add_cookies([browser_cookie(served.base_url, session)])
        page = await browsing.new_page()
        await page.goto(f"{served.base_url}/ui/runs")
        await page.wait_for_url("**/ui/account/mfa?next=/ui/runs")
        await page.locator("#required").wait_for()
        await page.locator("#qr").wait_for()
        assert await page.locator("#qr").evaluate("img => img.naturalWidth > 0")
        await shot(page, f"mfa-enrol-{name}")
        if name == "phone":
            await browsing.close()  # looked, and left it for the laptop
            continue
        secret = (await page.locator("#secret").inner_text()).strip()
        await page.fill("#enrol-code", pyotp.TOTP(secret).at(clock.now()))
        await page.click("text=Turn on two-factor sign-in")
        codes = page.locator("#recovery-codes li")
        await codes.first.wait_for()
        assert await codes.count() == 10
        await shot(page, "mfa-recovery-codes-laptop")
        await page.click("#continue")
        await page.wait_for_url(f"{served.base_url}/ui/runs")
        await browsing.close()

    # Signing in again: the password was right (a session at the second factor's stage)
    clock.advance(seconds=30)
    browsing = await context(browser, problems)
    waiting = await open_session(store, ada.id, stage="mfa")
    await browsing.add_cookies([browser_cookie(served.base_url, waiting)])
    page = await browsing.new_page()
    await page.goto(f"{served.base_url}/ui/login/mfa?next=/ui/runs")
    await shot(page, "mfa-sign-in-laptop")
    await page.fill("#code", "000000")
    await page.click("button:has-text('Verify')")
    await page.locator(".alert", has_text="neither the code").wait_for()
    await page.fill("#code", pyotp.TOTP(secret).at(clock.now()))
    await page.click("button:has-text('Verify')")
    await page.wait_for_url(f"{served.base_url}/ui/runs")
    cookies = {c["name"]: c["value"] for c in await browsing.cookies()}
    assert cookies["fulmen_session"] != waiting  # a new id at the new privilege
    await browsing.close()
    # Chromium notes the refused code's 401 on the console; that, and nothing else
    assert [p for p in problems if "401" not in p] == []
