"""A workflow seen as a graph, in headless Chromium against ``fulmen up`` (as
test_dashboard_browser.py drives it: Debian's ``/usr/bin/chromium``, nothing downloaded).

A workflow of three jobs with a failure edge is made through the REST API; its page draws
the trigger, the jobs and the edges' conditions, and a run of it that took the failure path
shows each job in the colour of its outcome, each node leading to its step. Screenshots, on a
laptop's screen and a phone's, go to ``test-artifacts/dashboard/`` (``*-workflow-graph.png``,
``*-run-graph.png``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fulmen_testing.browser import DEVICES, chromium, close_devices, shot, signed_in_devices
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio

FETCH = """
@fn
def fetch(state):
    items = state["data"]["items"]
    if not items:
        raise ValueError("nothing to fetch")
    print(f"fetched {len(items)}")
    return state
"""
LOAD = """
@fn
def load(state):
    print("loaded")
    return state
"""
ALERT = """
@fn
def alert(state):
    print("alerting the team")
    return state
"""
RETRY_WHEN = "state['data'].get('retry_after_alert') is True"
TRIAGE = {
    "name": "triage",
    "jobs": [
        {"id": "triage-fetch", "name": "fetch", "adaptor": "common", "body": FETCH},
        {"id": "triage-load", "name": "load", "adaptor": "common", "body": LOAD},
        {"id": "triage-alert", "name": "alert the on-call team", "adaptor": "common",
         "body": ALERT},
    ],
    "triggers": [{"id": "triage-hook", "type": "webhook"}],
    "edges": [
        {"source_trigger_id": "triage-hook", "target_job_id": "triage-fetch"},
        {"source_job_id": "triage-fetch", "target_job_id": "triage-load",
         "condition": "on_job_success"},
        {"source_job_id": "triage-fetch", "target_job_id": "triage-alert",
         "condition": "on_job_failure"},
        {"source_job_id": "triage-alert", "target_job_id": "triage-load",
         "condition": RETRY_WHEN, "enabled": False},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner") as running:
        async with running.api() as api:
            project = (await api.get("/api/projects")).json()["items"][0]
            created = await api.post(f"/api/projects/{project['id']}/workflows", json=TRIAGE)
            assert created.status_code == 201, created.text
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def complaints() -> list[str]:
    """Everything the browser's console reported as an error, and uncaught script errors,
    on any page these tests opened (a refusal under the CSP is one)."""
    return []


@pytest.fixture(scope="module")
async def devices(browser: Any, up: Up, complaints: list[str]) -> AsyncIterator[dict[str, Any]]:
    """A laptop's and a phone's browser, each signed in once through the sign-in form."""

    def watch(context: Any) -> None:
        context.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
        context.on("weberror", lambda e: complaints.append(str(e.error)))

    contexts = await signed_in_devices(browser, up, watch)
    yield contexts
    await close_devices(contexts)


async def fits(page: Any, name: str) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    limit = DEVICES[name]["viewport"]["width"]  # type: ignore[index]
    assert width <= limit, f"{name}: the page is {width}px wide"


async def in_view(locator: Any) -> bool:
    return bool(
        await locator.evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " return r.bottom > 0 && r.top < window.innerHeight; }"
        )
    )


async def run_to_the_end(up: Up, body: object) -> dict[str, Any]:
    async with up.api() as api:
        posted = await api.post(f"{up.base}/i/triage-hook", json=body)
        assert posted.status_code == 200, posted.text
        run_id = posted.json()["run_id"]
        async with asyncio.timeout(60):
            while True:
                run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
                if run["finished_at"]:
                    return run
                await asyncio.sleep(0.1)  # polling the API as a user would


async def test_a_workflow_page_draws_its_trigger_jobs_and_conditions(
    devices: dict[str, Any], up: Up
) -> None:
    for name in DEVICES:
        page = await devices[name].new_page()
        await page.goto(up.dashboard)
        await page.click(".workflow h3 a:text-is('triage')")
        await page.wait_for_url("**/ui/workflows/**")
        graph = page.locator("svg.graph")
        assert await graph.is_visible()
        jobs = graph.locator(".node-job .name")
        names = sorted(await jobs.all_text_contents())
        assert names == ["alert the on-call te…", "fetch", "load"]  # clipped to fit its box
        whole = graph.locator('[data-node="triage-alert"] > title')
        assert (await whole.text_content() or "").startswith("alert the on-call team")
        trigger = graph.locator(".node-trigger")
        assert await trigger.count() == 1
        assert await trigger.locator(".name").text_content() == "Webhook"
        labels = await graph.locator(".edge-label").all_text_contents()
        assert len(labels) == 4 and {"always", "on success", "on failure"} < set(labels)
        expression = graph.locator(".edge.disabled")
        assert (await expression.locator(".edge-label").text_content() or "").endswith("…")
        assert RETRY_WHEN in (await expression.locator("title").text_content() or "")
        dashes = await expression.locator("path").evaluate(
            "p => getComputedStyle(p).strokeDasharray"
        )
        assert dashes not in ("", "none")
        await fits(page, name)
        await shot(page, f"{name}-workflow-graph")

        # A job's node is a link, reached from the keyboard: Enter goes to the job's code.
        alert = graph.locator('a.node[data-node="triage-alert"]')
        await alert.focus()
        assert await page.evaluate("document.activeElement.dataset.node") == "triage-alert"
        await page.keyboard.press("Enter")
        await page.wait_for_url("**#job-triage-alert")
        section = page.locator("#job-triage-alert")
        assert "alerting the team" in await section.locator("pre.code").inner_text()
        assert await in_view(section)
        await page.close()


async def test_a_run_page_colours_each_job_by_its_outcome(devices: dict[str, Any], up: Up) -> None:
    run = await run_to_the_end(up, {"items": []})  # fetch fails; alert runs; load does not
    assert run["state"] == "success"  # the failure path handled it
    for name in DEVICES:
        page = await devices[name].new_page()
        await page.goto(f"{up.dashboard}/runs/{run['id']}")
        graph = page.locator(".run-graph svg.graph")
        fetch = graph.locator('[data-node="triage-fetch"]')
        alert = graph.locator('[data-node="triage-alert"]')
        load = graph.locator('[data-node="triage-load"]')
        assert "outcome-fail" in (await fetch.get_attribute("class") or "")
        assert "outcome-success" in (await alert.get_attribute("class") or "")
        assert "outcome-not-run" in (await load.get_attribute("class") or "")
        assert (await fetch.locator(".detail").text_content() or "").endswith("· fail")
        assert (await load.locator(".detail").text_content() or "").endswith("· not run")
        fill = "r => getComputedStyle(r).fill"
        colours = {await n.locator("rect").evaluate(fill) for n in (fetch, alert, load)}
        assert len(colours) == 3, colours  # three outcomes, three colours
        await fits(page, name)
        await shot(page, f"{name}-run-graph")

        # Clicking a node goes to its step, further down the page.
        await fetch.click()
        await page.wait_for_url("**#step-*")
        step = page.locator(".timeline .step:target")
        assert await step.get_attribute("data-job") == "fetch"
        assert "ValueError" in await step.locator(".reason-line").inner_text()
        assert await in_view(step), await step.evaluate(
            "el => [el.getBoundingClientRect().top, window.scrollY, window.innerHeight]"
        )
        await page.close()


async def test_nothing_went_wrong_in_the_browser(complaints: list[str]) -> None:
    """Runs last: no page these tests opened logged an error or had content refused by the
    Content-Security-Policy (no inline styles or scripts in the SVG)."""
    assert complaints == []
