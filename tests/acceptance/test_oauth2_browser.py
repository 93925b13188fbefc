"""Connecting an OAuth2 credential in headless Chromium (issue 19), against a coordinator on
127.0.0.1 and an OAuth2 provider named ``localhost``: another site, as a real provider is.

An admin creates an authorization-code credential on the credentials page, presses Connect,
passes through the provider (which consents at once) and comes back to the credentials page,
still signed in, with the credential connected: the session cookie is SameSite=Strict, and
this is where a redirect chain begun on the provider's site would have lost it.
Screenshots go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fulmen.store import OAuth2Status
from fulmen_testing.browser import LAPTOP, chromium, shot
from fulmen_testing.coordinator import seed, serve, sqlite_store
from fulmen_testing.oauth2_provider import CLIENT_ID, CLIENT_SECRET, oauth2_provider
from fulmen_testing.sign_in import browser_cookie, open_session, user

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def test_connect_goes_to_the_provider_and_comes_back_connected(
    browser: Any, tmp_path: Path
) -> None:
    async with (
        oauth2_provider("localhost") as provider,
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store) as served,
    ):
        seeded = await seed(store)
        admin = await user(store, "ada@example.org", admin=True)
        browsing = await browser.new_context(**LAPTOP)
        problems: list[str] = []
        browsing.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" or "Content Security" in m.text
                else None
            ),
        )
        await browsing.add_cookies(
            [browser_cookie(served.base_url, await open_session(store, admin.id))]
        )
        page = await browsing.new_page()
        await page.goto(f"{served.base_url}/ui/credentials")
        card = page.locator(f"#project-{seeded.project_id} details.oauth2")
        await card.locator("summary").click()
        await card.locator("input[name=name]").fill("partner")
        await card.locator("input[name=authorization_url]").fill(provider.authorize_url)
        await card.locator("input[name=token_url]").fill(provider.token_url)
        await card.locator("input[name=client_id]").fill(CLIENT_ID)
        await card.locator("input[name=client_secret]").fill(CLIENT_SECRET)
        await card.locator("input[name=scopes]").fill("read")
        await card.locator("button[type=submit]").click()
        await page.locator(".banner.ok", has_text="OAuth2 credential partner created").wait_for()
        await shot(page, "oauth2-created")
        await page.locator("button.connect").click()
        await page.locator(".banner.ok", has_text="partner is connected").wait_for()
        assert page.url.startswith(f"{served.base_url}/ui/credentials?done=connected")
        assert await page.locator("form.signout").count() == 1  # still signed in
        assert await page.locator('[data-status="connected"]').count() == 1
        await shot(page, "oauth2-connected")
        (state,) = await store.list_oauth2_states(seeded.project_id)
        assert state.status is OAuth2Status.CONNECTED
        assert provider.count("authorization_code") == 1
        assert problems == []
        await browsing.close()
