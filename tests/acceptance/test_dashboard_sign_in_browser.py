"""Signing in as a person, in headless Chromium against ``fulmen up`` (issue 18; as the other
browser tests drive it): the first admin it printed signs in with a password, a wrong one is
refused on the page; five failures refuse even the right password, saying when to try again;
an invitation made on the users page is accepted in another browser, which lands signed in;
a password changed on the account page signs the other browser out. No page logs an error
to the console. Screenshots (``laptop-sign-in.png``, ``-rate-limited``, ``-users``,
``-invitation``, ``-account``; ``phone-sign-in.png``, ``phone-users.png``) go to
``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from fulmen.coordinator.sign_in import BAD_CREDENTIALS
from fulmen_testing.browser import LAPTOP, PHONE, chromium, shot
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner") as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def console_errors() -> list[str]:
    return []


@pytest.fixture
async def new_context(browser: Any, console_errors: list[str]) -> AsyncIterator[Any]:
    """Makes browser contexts (each its own cookies: another browser), closed afterwards."""
    made: list[Any] = []

    async def make(device: dict[str, Any] = LAPTOP) -> Any:
        context = await browser.new_context(**device)
        context.on("console", lambda message: note_error(console_errors, message))
        context.on("weberror", lambda error: console_errors.append(str(error.error)))
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()


#: Chromium's console line for a page answered 401 (a refused sign-in), 404 (a used link) or
#: 429 (rate-limited): the refusals these tests make on purpose, not a page's fault.
REFUSED_PAGE = "Failed to load resource: the server responded with a status of "


def note_error(errors: list[str], message: Any) -> None:
    text: str = message.text
    refused = text.startswith(REFUSED_PAGE) and text[len(REFUSED_PAGE) :][:3] in (
        "401",
        "404",
        "429",
    )
    if message.type == "error" and not refused:
        errors.append(text)


async def sign_in(context: Any, up: Up, email: str, password: str) -> Any:
    """The sign-in form, as a person fills it; the page it leads to."""
    page = await context.new_page()
    await page.goto(up.dashboard)
    assert "/ui/login" in page.url
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return page


async def invited_user(up: Up, email: str) -> None:
    """A user with ``email`` and :data:`PASSWORD`, by an invitation made and accepted over
    HTTP (the first admin's API token, then the link)."""
    async with up.api() as api:
        made = await api.post("/api/invitations", json={"email": email})
        assert made.status_code == 201, made.text
        link = made.json()["url"]
    async with httpx2.AsyncClient(timeout=30) as http:
        form = {"password": PASSWORD, "repeat": PASSWORD}
        accepted = await http.post(link, data=form, headers={"Origin": up.base})
        assert accepted.status_code == 303, accepted.text


async def alert(page: Any) -> str:
    text: str = await page.locator("p.alert[role=alert]").inner_text()
    return text.strip()


async def test_the_first_admin_signs_in_with_a_password_and_a_wrong_one_is_refused(
    up: Up, new_context: Any
) -> None:
    email, password = up.admin
    context = await new_context()
    page = await sign_in(context, up, email, "not the password")
    assert "/ui/login" in page.url and await alert(page) == BAD_CREDENTIALS
    assert await page.locator("#token").count() == 0  # a token is for the API now
    assert await page.input_value("#email") == email
    await shot(page, "laptop-sign-in")
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(up.dashboard)
    assert await page.locator("form.signout button").is_visible()

    phone = await new_context(PHONE)
    page = await sign_in(phone, up, "nobody@example.org", "not the password")
    await shot(page, "phone-sign-in")
    page = await sign_in(phone, up, email, password)
    await page.goto(f"{up.dashboard}/users")
    assert email in await page.locator("table.users").inner_text()
    await shot(page, "phone-users")


async def test_five_failures_refuse_even_the_right_password(up: Up, new_context: Any) -> None:
    await invited_user(up, "locked@example.org")
    context = await new_context()
    page = await sign_in(context, up, "locked@example.org", "guess 1")
    for n in range(2, 6):
        assert await alert(page) == BAD_CREDENTIALS
        await page.fill("#password", f"guess {n}")
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    message = await alert(page)
    assert message.startswith("Too many failed sign-ins: try again in 15 minutes"), message
    assert "/ui/login" in page.url
    await shot(page, "laptop-rate-limited")


async def test_an_invitation_is_accepted_in_another_browser_that_lands_signed_in(
    up: Up, new_context: Any
) -> None:
    admin = await sign_in(await new_context(), up, *up.admin)
    await admin.goto(f"{up.dashboard}/users")
    await admin.fill("#invite-email", "grace@example.org")
    await admin.select_option("#invite-project", label="examples")
    await admin.select_option("#invite-role", value="editor")
    await admin.click("form.invite button[type=submit]")
    link_box = admin.locator("#new-invitation input.url")
    await link_box.wait_for()
    link = await link_box.input_value()
    assert link.startswith(f"{up.base}/ui/invitations/")
    await shot(admin, "laptop-users")

    grace = await (await new_context()).new_page()
    await grace.goto(link)
    assert "editor of the project examples" in await grace.locator("main").inner_text()
    await shot(grace, "laptop-invitation")
    await grace.fill("#name", "Grace")
    await grace.fill("#password", PASSWORD)
    await grace.fill("#repeat", PASSWORD)
    await grace.click("button[type=submit]")
    await grace.wait_for_url(up.dashboard)
    await grace.goto(f"{up.dashboard}/account")
    facts = await grace.locator(".facts").inner_text()
    assert "grace@example.org" in facts and "Grace" in facts
    assert "examples" in await grace.locator(".roles").inner_text()

    # The link worked once.
    await grace.goto(link)
    assert "used already" in await grace.locator("main").inner_text()


async def test_a_password_change_signs_the_other_browser_out(
    up: Up, new_context: Any, console_errors: list[str]
) -> None:
    await invited_user(up, "hopper@example.org")
    laptop = await sign_in(await new_context(), up, "hopper@example.org", PASSWORD)
    other = await sign_in(await new_context(), up, "hopper@example.org", PASSWORD)
    await other.goto(f"{up.dashboard}/runs")
    assert other.url == f"{up.dashboard}/runs"

    new = "another horse, stapled"
    await laptop.goto(f"{up.dashboard}/account")
    await laptop.fill("#current", PASSWORD)
    await laptop.fill("#new-password", new)
    await laptop.fill("#repeat", new)
    await laptop.click("form[data-form=password] button[type=submit]")
    await laptop.wait_for_url(f"{up.dashboard}/account?done=password")
    assert "other sessions are signed out" in await laptop.locator("[role=status]").inner_text()
    await shot(laptop, "laptop-account")

    await other.reload()
    assert "/ui/login" in other.url  # signed out
    await laptop.goto(f"{up.dashboard}/runs")
    assert laptop.url == f"{up.dashboard}/runs"  # this one stays
    await other.fill("#email", "hopper@example.org")
    await other.fill("#password", new)
    await other.click("button[type=submit]")
    await other.wait_for_url(f"{up.dashboard}/runs")
    assert console_errors == []
