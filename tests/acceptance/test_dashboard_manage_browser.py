"""Managing Fulmen from the dashboard, in headless Chromium against ``fulmen up`` (as
test_dashboard_browser.py drives it: Debian's /usr/bin/chromium through Playwright, nothing
downloaded): a credential created and its value set in the browser, then masked in the log of
a run whose job uses it; a trigger disabled and enabled; a cron trigger's next five times; an
API token made and revoked. No page logs an error to the console (a refusal under the
Content-Security-Policy is one). Screenshots of the credentials and trigger pages, on a
laptop and a phone, go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx2
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


SECRET = "tr0ub4dor-and-3-horses"
#: A job that prints its credential's password, as careless code does.
CARELESS = """
@fn
def connect(state):
    print("connecting with password", state["configuration"]["password"])
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
def console_errors() -> list[str]:
    """Every error any page logged to the console, CSP refusals included."""
    return []


@pytest.fixture(scope="module")
async def devices(browser: Any, up: Up, console_errors: list[str]) -> AsyncIterator[dict[str, Any]]:
    """A laptop's and a phone's browser, each signed in once through the sign-in form."""

    def watch(context: Any) -> None:
        context.on("console", lambda message: note_error(console_errors, message))
        context.on("weberror", lambda error: console_errors.append(str(error.error)))

    contexts = await signed_in_devices(browser, up, watch)
    yield contexts
    await close_devices(contexts)


def note_error(errors: list[str], message: Any) -> None:
    if message.type == "error" or "Content Security Policy" in message.text:
        errors.append(message.text)


async def fits(page: Any, device: dict[str, Any], what: str) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= device["viewport"]["width"], f"{what} is {width}px wide"


async def project_id(api: httpx2.AsyncClient) -> str:
    projects = (await api.get("/api/projects")).json()["items"]
    return str(projects[0]["id"])


async def finished(api: httpx2.AsyncClient, run_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            run: dict[str, Any] = (await api.get(f"/api/runs/{run_id}")).json()
            if run["finished_at"]:
                return run
            await asyncio.sleep(0.1)  # polling the API as a user would


async def test_a_credential_set_in_the_browser_is_masked_in_a_run_log(
    devices: dict[str, Any], up: Up, console_errors: list[str]
) -> None:
    page = await devices["laptop"].new_page()
    await page.goto(up.dashboard)
    await page.click("nav >> text=Credentials")
    await page.wait_for_url("**/ui/credentials")
    new = page.locator("details.new").first
    if not await new.evaluate("details => details.open"):
        await new.locator("summary").click()
    await new.locator("input[name=name]").fill("warehouse")
    await new.locator("textarea[name=body]").fill('{"password": "not-json-yet"')
    await new.locator("button[type=submit]").click()
    await page.locator(".field-error", has_text="not JSON").wait_for()
    assert "not-json-yet" not in await page.content()  # a refused value is not echoed
    # Chromium notes the refusal's status on the console; that one line, and nothing else
    refusal = "the server responded with a status of 422 (Unprocessable Entity)"
    assert [e for e in console_errors if refusal not in e] == []
    console_errors.clear()

    new = page.locator("details.new").first
    await new.locator("input[name=name]").fill("warehouse")
    await new.locator("textarea[name=body]").fill('{"password": "first-value-1234"}')
    await new.locator("button[type=submit]").click()
    await page.locator(".banner.ok", has_text="Credential warehouse created").wait_for()
    card = page.locator("article.credential", has_text="warehouse")
    assert await card.locator(".tag").inner_text() == "value set"
    assert await card.locator(".uses").inner_text() == "No job uses it."
    credential_id = await card.get_attribute("data-id")
    assert credential_id

    await card.locator("summary", has_text="Set a new value").click()
    await card.locator("textarea[name=body]").fill(f'{{"password": "{SECRET}"}}')
    await card.locator("button", has_text="Set value").click()
    await page.locator(".banner.ok", has_text="The value of warehouse is set.").wait_for()
    assert SECRET not in await page.content()

    async with up.api() as api:
        project = await project_id(api)
        document = {
            "name": "careless",
            "jobs": [
                {
                    "id": "connect",
                    "name": "connect",
                    "adaptor": "common",
                    "body": CARELESS,
                    "credential_id": credential_id,
                }
            ],
            "triggers": [{"id": "careless-hook", "type": "webhook"}],
            "edges": [{"source_trigger_id": "careless-hook", "target_job_id": "connect"}],
        }
        made = await api.post(f"/api/projects/{project}/workflows", json=document)
        assert made.status_code == 201, made.text
        posted = await api.post("/i/careless-hook", json={})
        assert posted.status_code == 200, posted.text
        run_id = posted.json()["run_id"]
        assert (await finished(api, run_id))["state"] == "success"

    await page.reload()
    card = page.locator("article.credential", has_text="warehouse")
    assert await card.locator(".uses li").inner_text() == "careless / connect"
    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        view = page if name == "laptop" else await devices[name].new_page()
        if view is not page:
            await view.goto(f"{up.dashboard}/credentials")
        await fits(view, device, f"the credentials page on a {name}")
        await shot(view, f"{name}-credentials")
        if view is not page:
            await view.close()

    await page.goto(f"{up.dashboard}/runs/{run_id}")
    line = page.locator(".logs .line .msg", has_text="connecting with password")
    await line.wait_for()
    assert await line.inner_text() == "connecting with password ***"
    assert SECRET not in await page.content()
    await page.close()
    assert console_errors == []


async def test_a_webhook_trigger_is_disabled_and_enabled(
    devices: dict[str, Any], up: Up, console_errors: list[str]
) -> None:
    page = await devices["laptop"].new_page()
    await page.goto(up.dashboard)
    hook = up.webhooks[0]
    trigger_id = hook.rsplit("/", 1)[1]
    await page.locator(f'.triggers a.manage[href$="/triggers/{trigger_id}"]').click()
    await page.wait_for_url(f"**/ui/triggers/{trigger_id}")
    assert await page.locator("input.url").input_value() == hook
    assert await page.locator("#trigger-state").inner_text() == "enabled"
    await shot(page, "laptop-trigger-webhook")

    await page.click("button:has-text('Disable')")
    await page.locator(".banner.ok", has_text="Trigger disabled").wait_for()
    assert await page.locator("#trigger-state").inner_text() == "disabled"
    async with up.api() as api:
        assert (await api.post(hook, json={})).status_code == 404

    await page.click("button:has-text('Enable')")
    await page.locator(".banner.ok", has_text="Trigger enabled").wait_for()
    assert await page.locator("#trigger-state").inner_text() == "enabled"
    async with up.api() as api:
        assert (await api.post(hook, json={"items": []})).status_code == 200

    phone = await devices["phone"].new_page()
    await phone.goto(f"{up.dashboard}/triggers/{trigger_id}")
    await fits(phone, PHONE, "a webhook trigger's page on a phone")
    await shot(phone, "phone-trigger-webhook")
    await phone.close()
    await page.close()
    assert console_errors == []


async def test_a_cron_trigger_shows_its_next_five_times(
    devices: dict[str, Any], up: Up, console_errors: list[str]
) -> None:
    async with up.api() as api:
        project = await project_id(api)
        document = {
            "name": "nightly",
            "jobs": [{"id": "tidy", "adaptor": "common", "body": "fn(lambda s: s)"}],
            "triggers": [
                {
                    "id": "nightly-cron",
                    "type": "cron",
                    "cron_expression": "15 6 * * 1-5",
                    "timezone": "America/New_York",
                }
            ],
            "edges": [{"source_trigger_id": "nightly-cron", "target_job_id": "tidy"}],
        }
        made = await api.post(f"/api/projects/{project}/workflows", json=document)
        assert made.status_code == 201, made.text

    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        page = await devices[name].new_page()
        await page.goto(up.dashboard)
        await page.locator('.triggers a.manage[href$="/triggers/nightly-cron"]').click()
        await page.wait_for_url("**/ui/triggers/nightly-cron")
        assert await page.locator("#cron-expression").inner_text() == "15 6 * * 1-5"
        assert await page.locator("#cron-zone").inner_text() == "America/New_York"
        words = await page.locator("#cron-words").inner_text()
        assert words == "At 06:15, Monday through Friday (America/New_York)"
        rows = page.locator("table.fires tbody tr")
        assert await rows.count() == 5
        for row in await rows.all():
            local, utc = await row.locator("td").all_inner_texts()
            assert " 06:15 E" in local  # EST or EDT
            assert utc.endswith(("11:15 UTC", "10:15 UTC"))
        await fits(page, device, f"a cron trigger's page on a {name}")
        await shot(page, f"{name}-trigger-cron")
        await page.close()
    assert console_errors == []


async def test_a_token_made_in_the_browser_works_until_revoked(
    devices: dict[str, Any], up: Up, console_errors: list[str]
) -> None:
    page = await devices["laptop"].new_page()
    await page.goto(up.dashboard)
    await page.click("nav >> text=Tokens")
    await page.wait_for_url("**/ui/tokens")
    await page.fill("#token-name", "deploy bot")
    await page.click("button:has-text('Make token')")
    shown = page.locator("#new-token input.url")
    await shown.wait_for()
    token = await shown.input_value()
    assert token.startswith("fmn_")
    await shot(page, "laptop-tokens")

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=up.base, timeout=30) as http:
        assert (await http.get("/api/projects", headers=headers)).status_code == 200
        await page.goto(f"{up.dashboard}/tokens")
        assert token not in await page.content()
        row = page.locator("tr", has_text="deploy bot")
        assert await row.locator(".last-used time").count() == 1

        await row.locator("button", has_text="Revoke").click()
        await page.locator(".banner.ok", has_text="Token revoked").wait_for()
        assert await page.locator("tr", has_text="deploy bot").count() == 0
        assert (await http.get("/api/projects", headers=headers)).status_code == 401
    await page.close()
    assert console_errors == []
