"""Alerts from the dashboard, in headless Chromium against ``fulmen up`` (as the other browser
tests drive it): an e-mail channel made and a workflow's rule saved in the browser; the
workflow's run fails; the SMTP server (a real one, on loopback) refuses the alert for a while,
and the page says the channel is failing, with the server's words and the next try; once the
server takes mail again the retry delivers it, and the page says so. No console errors.
Screenshots of the alerts page on a laptop and a phone go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fulmen_testing.alerts import Inbox, smtp_inbox
from fulmen_testing.browser import LAPTOP, PHONE, chromium, close_devices, shot, signed_in_devices
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio

#: Raises: its runs end ``failed``.
FRAGILE = "fn(lambda s: 1 / 0)"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def inbox() -> AsyncIterator[Inbox]:
    async with smtp_inbox() as opened:
        opened.refuse = 1_000_000  # until the test opens it
        yield opened


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory, inbox: Inbox) -> AsyncIterator[Up]:
    env = {
        "FULMEN_SMTP_HOST": "127.0.0.1",
        "FULMEN_SMTP_PORT": str(inbox.port),
        "FULMEN_SMTP_STARTTLS": "false",
        "FULMEN_ALERT_POLL_SECONDS": "0.2",
        "FULMEN_ALERT_BACKOFF": "1/1",
    }
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner", env=env) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


async def test_a_failing_channel_shows_on_the_alerts_page_until_its_retry_delivers(
    browser: Any, up: Up, inbox: Inbox
) -> None:
    errors: list[str] = []

    def watch(context: Any) -> None:
        context.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda error: errors.append(str(error.error)))

    devices = await signed_in_devices(browser, up, watch)
    try:
        async with up.api() as api:
            project = (await api.get("/api/projects")).json()["items"][0]["id"]
            made = await api.post(
                f"/api/projects/{project}/workflows",
                json={
                    "name": "fragile",
                    "jobs": [{"id": "boom", "name": "boom", "adaptor": "common", "body": FRAGILE}],
                    "triggers": [{"id": "fragile-hook", "type": "webhook"}],
                    "edges": [{"source_trigger_id": "fragile-hook", "target_job_id": "boom"}],
                },
            )
            assert made.status_code == 201, made.text
            workflow = made.json()["id"]

            page = await devices["laptop"].new_page()
            await page.goto(up.dashboard)
            await page.click("nav >> text=Alerts")
            await page.wait_for_url("**/ui/alerts")
            new = page.locator(f"#project-{project} details.new")
            if not await new.evaluate("details => details.open"):
                await new.locator("summary").click()
            await new.locator("input[name=name]").fill("ops")
            await new.locator("input[name=recipients]").fill("ops@example.org")
            await new.locator("button[type=submit]").click()
            await page.locator(".banner.ok", has_text="Channel created.").wait_for()

            rule = page.locator(f"#rule-{workflow}")
            await rule.locator("label", has_text="ops").locator("input").check()
            await rule.locator("button", has_text="Save rule").click()
            await page.locator(".banner.ok", has_text="Alert rule saved.").wait_for()
            assert await page.locator(f"#rule-{workflow} .tag", has_text="alerting").count() == 1

            posted = await api.post("/i/fragile-hook", json={})
            assert posted.status_code == 200, posted.text
            failing = page.locator(
                ".channel .failure", has_text="answered 451 4.3.0 try again later"
            )
            async with asyncio.timeout(60):
                while not await failing.count():
                    await asyncio.sleep(0.2)  # reloading the page as a user would
                    await page.reload()
            text = await failing.inner_text()
            assert "delivery failing" in text and "next try" in text
            assert await page.locator(".tag.bad", has_text="failing").count() == 1
            for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
                view = page if name == "laptop" else await devices[name].new_page()
                if view is not page:
                    await view.goto(f"{up.dashboard}/alerts")
                width = await view.evaluate("document.documentElement.scrollWidth")
                assert width <= device["viewport"]["width"], f"the alerts page on a {name}"
                await shot(view, f"{name}-alerts")
                if view is not page:
                    await view.close()

            inbox.refuse = 0  # the server takes mail again: the next retry delivers
            mail = await asyncio.wait_for(inbox.messages.get(), 30)
            assert mail["Subject"] == "[Fulmen] fragile: 1 run failed"
            delivering = page.locator(".channel .tag.ok", has_text="delivering")
            async with asyncio.timeout(30):
                while not await delivering.count():
                    await asyncio.sleep(0.2)
                    await page.reload()
            assert await page.locator(".channel .failure").count() == 0
    finally:
        await close_devices(devices)
    assert errors == []
