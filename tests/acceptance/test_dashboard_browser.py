"""The dashboard in headless Chromium, against ``fulmen up``: Debian's ``/usr/bin/chromium``
driven by Playwright through its executable path (nothing is downloaded; ``playwright
install`` is never run). Screenshots of each page, on a laptop's screen and a phone's, go to
``test-artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fulmen_testing.browser import (
    LAPTOP,
    PHONE,
    chromium,
    close_devices,
    shot,
    signed_in_devices,
)
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio


CHATTY = """
@fn
def talk(state):
    import logging
    for i in range(10000):
        if i == 9999:
            logging.error("line %d of 10000: the last", i + 1)
        else:
            print(f"line {i + 1} of 10000")
    return state
"""


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
def refused() -> list[str]:
    """What Chromium refused under the dashboard's Content-Security-Policy, on any page."""
    return []


@pytest.fixture(scope="module")
async def devices(browser: Any, up: Up, refused: list[str]) -> AsyncIterator[dict[str, Any]]:
    """A laptop's and a phone's browser, each signed in once through the sign-in form."""

    def watch(context: Any) -> None:
        context.on("console", lambda message: note_refusal(refused, message.text))

    contexts = await signed_in_devices(browser, up, watch)
    yield contexts
    await close_devices(contexts)


def note_refusal(refused: list[str], text: str) -> None:
    if "Content Security Policy" in text:
        refused.append(text)


async def signed_in(devices: dict[str, Any], name: str) -> Any:
    """A new page (tab) of the device's signed-in browser."""
    return await devices[name].new_page()


async def post(up: Up, body: object, url: str | None = None) -> str:
    async with up.api() as api:
        posted = await api.post(url or up.webhooks[0], json=body)
        assert posted.status_code == 200, posted.text
        return str(posted.json()["run_id"])


async def finished(up: Up, run_id: str) -> dict[str, Any]:
    async with up.api() as api, asyncio.timeout(60):
        while True:
            run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
            if run["finished_at"]:
                return run
            await asyncio.sleep(0.1)  # polling the API as a user would


async def test_workflows_page_lists_the_webhook_to_copy(devices: dict[str, Any], up: Up) -> None:
    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        page = await signed_in(devices, name)
        await page.goto(up.dashboard)
        url = page.locator("input.url")
        assert await url.input_value() == up.webhooks[0]
        assert await page.locator("button[data-copy]").get_attribute("data-copy") == up.webhooks[0]
        assert await page.locator(".workflow h3").inner_text() == "count-and-report"
        assert await page.locator("#status [data-key=workers]").inner_text() == "1"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= device["viewport"]["width"], f"{name}: the page is {width}px wide"
        await shot(page, f"{name}-workflows")
        await page.close()


async def test_posted_runs_appear_in_the_list_without_a_reload_and_failures_stand_out(
    devices: dict[str, Any], up: Up
) -> None:
    page = await signed_in(devices, "laptop")
    await page.goto(f"{up.dashboard}/runs")
    await page.evaluate("window.stayed = true")  # gone if the page reloads
    good = await post(up, {"items": ["a", "b", "c"]})
    bad = await post(up, {"items": None})  # count fails: len(None)
    row = page.locator(f'tr[data-id="{bad}"]')
    await row.locator(".state", has_text="failed").wait_for(timeout=20_000)
    await page.locator(f'tr[data-id="{good}"] .state', has_text="success").wait_for()
    assert await page.evaluate("window.stayed") is True
    assert "bad" in (await row.get_attribute("class") or "")
    colour = await row.evaluate("row => getComputedStyle(row).backgroundColor")
    assert colour != "rgba(0, 0, 0, 0)"  # tinted
    assert "TypeError" in await row.locator(".reason").inner_text()
    await shot(page, "laptop-runs")

    await page.select_option("select[name=state]", "failed")
    await page.wait_for_url("**state=failed**")
    assert await page.locator("tr.run").count() == 1
    await page.close()

    phone = await signed_in(devices, "phone")
    await phone.goto(f"{up.dashboard}/runs")
    assert await phone.locator(f'tr[data-id="{bad}"] .state').inner_text() == "failed"
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the runs list is {width}px wide on a phone"
    await shot(phone, "phone-runs")
    await phone.close()


async def test_a_run_page_shows_its_steps_logs_and_dataclips(
    devices: dict[str, Any], up: Up
) -> None:
    run_id = await post(up, {"items": ["a", "b"]})
    await finished(up, run_id)
    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        page = await signed_in(devices, name)
        await page.goto(up.dashboard)
        await page.goto(f"{up.dashboard}/runs")
        await page.click(f'tr[data-id="{run_id}"] a.mono')
        await page.wait_for_url(f"**/ui/runs/{run_id}")
        assert await page.locator(".summary .state").inner_text() == "success"
        jobs = await page.locator(".timeline .step .job").all_inner_texts()
        assert jobs == ["count", "check", "report"]
        assert await page.locator(".timeline .bar").count() == 3
        await page.locator(".logs .line .msg", has_text="2 items").wait_for()
        assert await page.locator(".logs .line.l-info").count() > 0
        await page.locator(".summary details summary", has_text="Input").click()
        clip = page.locator(".summary details pre.json").first
        await clip.wait_for()
        assert '"items": [\n    "a",\n    "b"\n  ]' in await clip.inner_text()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= device["viewport"]["width"], f"{name}: the page is {width}px wide"
        await shot(page, f"{name}-run")
        await page.close()


async def test_retry_from_a_step_runs_again_in_the_same_work_order(
    devices: dict[str, Any], up: Up
) -> None:
    failed = await post(up, {"items": None})
    await finished(up, failed)
    page = await signed_in(devices, "laptop")
    await page.goto(f"{up.dashboard}/runs/{failed}")
    assert await page.locator(".summary .state").inner_text() == "failed"
    await page.click("button:has-text('Retry from count')")
    await page.wait_for_url(lambda url: "/ui/runs/" in url and failed not in url)
    await page.locator(".summary[data-final] .state").wait_for(timeout=20_000)  # live
    assert await page.locator(".summary .state").inner_text() == "failed"  # same input
    await page.locator("#logs[data-settled]").wait_for()  # the last lines, read once more
    assert await page.locator(".logs .line.l-error").count() > 0
    assert await page.locator(".siblings .state.bad").count() == 2
    assert await page.locator(".facts dd", has_text="manual").count() == 1
    await shot(page, "laptop-retried-run")
    await page.close()


async def test_a_log_of_ten_thousand_lines_stays_responsive(
    devices: dict[str, Any], up: Up
) -> None:
    async with up.api() as api:
        project = (await api.get("/api/projects")).json()["items"][0]
        created = await api.post(
            f"/api/projects/{project['id']}/workflows",
            json={
                "name": "chatty",
                "jobs": [{"id": "talk", "name": "talk", "adaptor": "common", "body": CHATTY}],
                "triggers": [{"id": "chatty-hook", "type": "webhook"}],
                "edges": [{"source_trigger_id": "chatty-hook", "target_job_id": "talk"}],
            },
        )
        assert created.status_code == 201, created.text
    run_id = await post(up, {}, up.base + "/i/chatty-hook")
    assert (await finished(up, run_id))["state"] == "success"

    page = await signed_in(devices, "laptop")
    started = time.monotonic()
    await page.goto(f"{up.dashboard}/runs/{run_id}")
    first_page = time.monotonic() - started
    assert await page.locator(".logs .line").count() == 1000  # one page up front
    started = time.monotonic()
    await page.click("#logs-jump")
    last = page.locator(".logs .line.l-error .msg", has_text="line 10000 of 10000: the last")
    await last.wait_for(timeout=20_000)
    everything = time.monotonic() - started
    assert await last.is_visible()
    assert await page.locator(".logs .line").count() >= 10_000
    started = time.monotonic()
    await page.uncheck("input[data-level=info]")
    await page.locator(".logs .line.l-info").first.wait_for(state="hidden")
    filtered = time.monotonic() - started
    await shot(page, "laptop-ten-thousand-lines")
    # Generous bounds for a shared machine; the figures are in the test's output with -s.
    timings = f"first page {first_page:.2f}s, all {everything:.2f}s, filter {filtered:.2f}s"
    print(f"10,000 lines: {timings}")
    assert first_page < 5 and everything < 20 and filtered < 3
    await page.close()


async def test_the_pages_work_under_the_content_security_policy(
    devices: dict[str, Any], up: Up, refused: list[str]
) -> None:
    """Runs last: every page the tests above opened ran with nothing refused; the cookie is a
    session id, not the token; and an inline script is refused, so the policy is in force."""
    assert refused == []
    cookies = await devices["laptop"].cookies()
    (session,) = [cookie for cookie in cookies if cookie["name"] == "fulmen_session"]
    assert session["value"] != up.token and session["httpOnly"]
    assert session["sameSite"] == "Strict"

    page = await signed_in(devices, "laptop")
    await page.goto(f"{up.dashboard}/runs")
    async with page.expect_console_message(
        lambda message: "Content Security Policy" in message.text
    ):
        await page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.inlined = true";
                document.head.append(script);
            }"""
        )
    assert await page.evaluate("window.inlined") is None
    assert await page.locator("tr.run").count() > 0  # dashboard.js still filled the list
    await page.close()
