"""The dashboard's runs workspace (issue 17) in headless Chromium against ``fulmen up``, used
as a person would: run a workflow by hand with an input, watch it complete, find it by a word
from its log, export the result, cancel a run that waits, rerun two work orders at once.
Debian's ``/usr/bin/chromium`` as test_dashboard_browser.py drives it; screenshots of the
run-by-hand page and of the search results (laptop and phone) go to
``test-artifacts/dashboard/``. No console error, and nothing refused by the CSP, on any page.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
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

SAY = """
@fn
def say(state):
    word = state["data"]["word"]
    print(f"greeting {word}-{len(word)}")
    return state
"""
WAIT = """
@fn
def wait(state):
    import time
    print("waiting for a cancel")
    time.sleep(120)
    return state
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner") as running:
        for name, body in (("greet", SAY), ("waiter", WAIT)):
            await workflow(running, name, body)
        yield running


async def workflow(up: Up, name: str, body: str) -> None:
    async with up.api() as api:
        project = (await api.get("/api/projects")).json()["items"][0]
        created = await api.post(
            f"/api/projects/{project['id']}/workflows",
            json={
                "name": name,
                "jobs": [{"id": f"{name}-job", "name": name, "adaptor": "common", "body": body}],
                "triggers": [{"id": f"{name}-hook", "type": "webhook"}],
                "edges": [{"source_trigger_id": f"{name}-hook", "target_job_id": f"{name}-job"}],
            },
        )
        assert created.status_code == 201, created.text


@pytest.fixture(scope="module")
def problems() -> list[str]:
    """Console errors and CSP refusals, on any page of any test here."""
    return []


@pytest.fixture(scope="module")
async def devices(up: Up, problems: list[str]) -> AsyncIterator[dict[str, Any]]:
    def watch(context: Any) -> None:
        context.on("console", lambda message: note(problems, message))

    async with chromium() as browser:
        contexts = await signed_in_devices(browser, up, watch, accept_downloads=True)
        yield contexts
        await close_devices(contexts)


def note(problems: list[str], message: Any) -> None:
    if message.type == "error" or "Content Security Policy" in message.text:
        problems.append(f"{message.type}: {message.text}")


async def finished(up: Up, run_id: str) -> dict[str, Any]:
    async with up.api() as api, asyncio.timeout(60):
        while True:
            run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
            if run["finished_at"]:
                return run
            await asyncio.sleep(0.1)  # polling the API as a user would


async def test_run_by_hand_watch_it_find_it_by_its_log_and_export_it(
    devices: dict[str, Any], up: Up, tmp_path: Path
) -> None:
    page = await devices["laptop"].new_page()
    await page.goto(up.dashboard)
    greet = page.locator(".workflow", has=page.locator("h3", has_text="greet"))
    await greet.locator("a", has_text="Run…").click()
    await page.wait_for_url("**/ui/workflows/*/run")
    form_url = page.url

    # Checked as it is typed: a parse error is shown and nothing is sent.
    await page.fill("#input", '{"data": {"word": "quokka",}}')
    status = page.locator("#json-status")
    assert (await status.inner_text()).startswith("Not JSON:")
    assert await page.get_attribute("#input", "aria-invalid") == "true"
    await page.click("#start-run")
    assert page.url == form_url
    await page.fill("#input", '{"data": {"word": "quokka"}}')
    assert await status.inner_text() == "Valid JSON."
    await shot(page, "laptop-run-by-hand")
    await page.click("#start-run")
    await page.wait_for_url(lambda url: "/ui/runs/" in url)
    run_id = page.url.rsplit("/", 1)[1]
    await page.locator(".summary[data-final] .state", has_text="success").wait_for(timeout=30_000)
    await page.locator(".logs .line .msg", has_text="greeting quokka-6").wait_for()
    await page.close()

    phone = await devices["phone"].new_page()
    await phone.goto(form_url)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["viewport"]["width"], f"run-by-hand is {width}px wide on a phone"
    await shot(phone, "phone-run-by-hand")
    await phone.close()

    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        page = await devices[name].new_page()
        await page.goto(f"{up.dashboard}/runs")
        await page.fill("input[name=q]", "QUOKKA-6")
        await page.press("input[name=q]", "Enter")
        await page.wait_for_url("**q=QUOKKA-6**")
        rows = page.locator("tr.run")
        assert await rows.count() == 1
        assert await rows.first.get_attribute("data-id") == run_id
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= device["viewport"]["width"], f"{name}: results are {width}px wide"
        await shot(page, f"{name}-search-results")
        if name == "laptop":
            shared = page.url
            async with page.expect_download() as csv_download:
                await page.click("text=Export CSV")
            saved = tmp_path / "runs.csv"
            await (await csv_download.value).save_as(saved)
            (row,) = list(csv.DictReader(io.StringIO(saved.read_text())))
            assert (row["run_id"], row["workflow"], row["state"]) == (run_id, "greet", "success")
            # A trivial run can take under a millisecond: its duration is the two times'
            # difference, to the millisecond, whatever it is.
            took = datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(
                row["started_at"]
            )
            assert float(row["duration_s"]) == round(took.total_seconds(), 3) >= 0
            async with page.expect_download() as json_download:
                await page.click("text=Export JSON")
            saved = tmp_path / "runs.json"
            await (await json_download.value).save_as(saved)
            (item,) = json.loads(saved.read_text())
            assert (item["run_id"], item["state"], item["error_type"]) == (run_id, "success", None)
            again = await devices["laptop"].new_page()  # the URL is the search, to share
            await again.goto(shared)
            assert await again.locator("tr.run").count() == 1
            await again.close()
        await page.close()


async def test_cancel_a_running_run_from_its_page(devices: dict[str, Any], up: Up) -> None:
    async with up.api() as api:
        posted = await api.post(up.base + "/i/waiter-hook", json={})
        run_id = posted.json()["run_id"]
    page = await devices["laptop"].new_page()
    await page.goto(f"{up.dashboard}/runs/{run_id}")
    await page.locator(".logs .line .msg", has_text="waiting for a cancel").wait_for(timeout=30_000)
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.click("button:has-text('Cancel run')")
    await page.locator(".summary[data-final] .state", has_text="cancelled").wait_for(timeout=30_000)
    assert asked == ["Cancel this run? A running job is stopped."]
    assert await page.locator("[data-cancelled]").is_visible()
    assert await page.locator("button:has-text('Cancel run')").count() == 0
    assert (await finished(up, run_id))["state"] == "cancelled"
    await page.close()


async def test_rerun_two_work_orders_from_a_job_with_the_keyboard(
    devices: dict[str, Any], up: Up
) -> None:
    ids = []
    async with up.api() as api:
        for word in ("one", "two"):
            posted = await api.post(up.base + "/i/greet-hook", json={"word": word})
            ids.append(posted.json()["run_id"])
    for run_id in ids:
        await finished(up, run_id)
    page = await devices["laptop"].new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{up.dashboard}/runs")
    await page.select_option("select[name=workflow_id]", label="greet")
    await page.wait_for_url("**workflow_id=**")
    for run_id in ids:
        await page.focus(f'tr[data-id="{run_id}"] input[type=checkbox]')
        await page.keyboard.press("Space")
    assert await page.locator("#bulk-count").inner_text() == "2 selected"
    await page.select_option("select[name=job_id]", label="greet")
    await page.click("button:has-text('Rerun selected')")
    await page.locator("#rerun-result").wait_for()
    assert await page.locator("[data-started]").get_attribute("data-started") == "2"
    assert await page.locator("[data-failed]").count() == 0
    started = await page.locator(".started a").all_inner_texts()
    assert len(started) == 2
    await page.click(f"text={started[0]}")
    await page.locator(".summary[data-final] .state", has_text="success").wait_for(timeout=30_000)
    assert await page.locator(".siblings li").count() == 2  # in the same work order
    await page.close()


async def test_nothing_was_refused_or_failed_in_the_console(problems: list[str]) -> None:
    """Runs last: every page above ran with no console error and nothing refused."""
    assert problems == []
