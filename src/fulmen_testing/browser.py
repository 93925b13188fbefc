"""The dashboard in a real browser, for the browser tests: Debian's ``/usr/bin/chromium`` driven
by Playwright through its executable path (nothing is downloaded; ``playwright install`` is
never run), a laptop's and a phone's screen, signing in through the sign-in form as a user
does (or, for the tests of roles, as a given user straight away: :func:`signed_in_as`), and
screenshots for a reviewer in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest

from fulmen.store import SQLStore
from fulmen_testing.teams import COOKIE, sign_in
from fulmen_testing.up import Up

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "DEVICES",
    "LAPTOP",
    "PHONE",
    "chromium",
    "close_devices",
    "shot",
    "signed_in_as",
    "signed_in_devices",
]

CHROMIUM: Final = Path("/usr/bin/chromium")
#: What works on this kind of machine (no GPU, no network beyond loopback, running as root).
FLAGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
LAPTOP: Final[dict[str, Any]] = {"viewport": {"width": 1366, "height": 900}}
PHONE: Final[dict[str, Any]] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
DEVICES: Final = {"laptop": LAPTOP, "phone": PHONE}


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """The browser; a test without it fails under CI (scripts/test installs it) and is
    skipped elsewhere, saying how to get it."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in_devices(
    browser: Any, up: Up, watch: Callable[[Any], None], **options: Any
) -> dict[str, Any]:
    """A laptop's and a phone's browser context, each signed in once through the sign-in
    form as the first admin ``fulmen up`` made; ``watch`` is given each context first (to
    listen to its console)."""
    email, password = up.admin
    contexts = {}
    for name, device in DEVICES.items():
        context = await browser.new_context(**options, **device)
        watch(context)
        page = await context.new_page()
        await page.goto(up.dashboard)
        assert "/ui/login" in page.url
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("button[type=submit]")
        await page.wait_for_url(up.dashboard)
        await page.close()
        contexts[name] = context
    return contexts


async def signed_in_as(
    browser: Any, base_url: str, store: SQLStore, user_id: str, **options: Any
) -> Any:
    """A browser context signed in as the user ``user_id`` of ``store``: a dashboard session
    opened in the store (as signing in opens one) and its cookie given to the browser, with
    the attributes session.py sets. For the tests of what each role sees; how one signs in
    is the sign-in pages' tests' business."""
    context = await browser.new_context(**options)
    session_id = await sign_in(store, user_id=user_id)
    host = urlsplit(base_url).hostname
    cookie = {
        "name": COOKIE,
        "value": session_id,
        "domain": host,
        "path": "/ui",
        "httpOnly": True,
        "sameSite": "Strict",
    }
    await context.add_cookies([cookie])
    return context


async def close_devices(contexts: dict[str, Any]) -> None:
    for context in contexts.values():
        await context.close()


async def shot(page: Any, name: str) -> None:
    """A screenshot of the whole page for a reviewer: ``test-artifacts/dashboard/<name>.png``."""
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
