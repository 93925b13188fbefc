"""The dashboard kept current by its event stream (issue 17: live), in headless Chromium
against ``fulmen up`` (Debian's ``/usr/bin/chromium``, as test_dashboard_browser.py drives it).

The pages' fallback poll is set to an hour (``FULMEN_DASHBOARD_LIVE_POLL_SECONDS``), far beyond
this test, so only ``/ui/events`` can have told them: a run started by webhook appears in an
open runs list, and an open run page reaches its final state, logs and all, without a reload.
No console error on either page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from fulmen_testing.browser import LAPTOP, chromium
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio

#: Long enough that its run page is open before it ends.
SLOW = """
@fn
def slow(state):
    import time
    print("starting the slow one")
    time.sleep(4)
    print("the slow one is done")
    return state
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    hour = {"FULMEN_DASHBOARD_LIVE_POLL_SECONDS": "3600"}
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner", env=hour) as running:
        async with running.api() as api:
            project = (await api.get("/api/projects")).json()["items"][0]
            created = await api.post(
                f"/api/projects/{project['id']}/workflows",
                json={
                    "name": "slow",
                    "jobs": [{"id": "slow-job", "name": "slow", "adaptor": "common", "body": SLOW}],
                    "triggers": [{"id": "slow-hook", "type": "webhook"}],
                    "edges": [{"source_trigger_id": "slow-hook", "target_job_id": "slow-job"}],
                },
            )
            assert created.status_code == 201, created.text
        yield running


@pytest.fixture(scope="module")
async def browser_page(up: Up) -> AsyncIterator[tuple[Any, list[str], list[str]]]:
    """A signed-in page, the console's errors, and the URLs of the stream's requests."""
    problems: list[str] = []
    streams: list[str] = []
    async with chromium() as browser:
        context = await browser.new_context(**LAPTOP)
        context.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page = await context.new_page()
        page.on("request", lambda r: "/ui/events" in r.url and streams.append(r.url))
        await page.goto(up.dashboard)
        email, password = up.admin
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("button[type=submit]")
        await page.wait_for_url(up.dashboard)
        yield page, problems, streams


async def test_a_new_run_appears_and_its_page_ends_without_a_reload(
    up: Up, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, problems, streams = browser_page
    await page.goto(up.dashboard + "/runs")
    await page.evaluate("window.notReloaded = true")
    await page.wait_for_function("() => document.readyState === 'complete'")
    async with httpx2.AsyncClient() as http:
        hooked = await http.post(f"{up.base}/i/slow-hook", json={"n": 1})
    assert hooked.status_code in (200, 201, 202), hooked.text
    run_id = hooked.json()["run_id"]

    row = page.locator(f'#run-rows tr[data-id="{run_id}"]')
    await row.wait_for(timeout=10_000)  # told by the stream: the poll is an hour away
    assert await page.evaluate("window.notReloaded") is True
    assert any(url.endswith("/ui/events") for url in streams)
    assert await page.evaluate("document.documentElement.dataset.liveBy") == "stream"

    await row.locator(f'a[href$="{run_id}"]').click()
    await page.wait_for_url("**/ui/runs/*")
    assert await page.locator("#live[data-done]").count() == 0, "it ended before its page opened"
    await page.evaluate("window.notReloaded = true")
    await page.locator(".summary[data-final] .state", has_text="success").wait_for(timeout=30_000)
    await page.locator("#logs[data-settled]").wait_for(timeout=10_000)
    assert "the slow one is done" in await page.locator("#logs").inner_text()
    assert await page.evaluate("window.notReloaded") is True
    assert any("/ui/events?run=" in url for url in streams)
    assert await page.evaluate("document.documentElement.dataset.liveBy") == "stream"
    assert problems == []
