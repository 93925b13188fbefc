"""Collections on the dashboard (issue 19), in headless Chromium against ``fulmen up`` (as
test_dashboard_manage_browser.py drives it): a collection created in the browser, filled
through ``/collections`` with the API token, its keys searched with a pattern and paged by
cursor, a value opened, an item and then the collection deleted (the delete asks first). No
page logs an error to the console. Screenshots of the collection's page, on a laptop and a
phone, go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fulmen_testing.browser import LAPTOP, PHONE, chromium, close_devices, shot, signed_in_devices
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner") as running:
        yield running


@pytest.fixture(scope="module")
async def devices(up: Up) -> AsyncIterator[tuple[dict[str, Any], list[str]]]:
    errors: list[str] = []

    def watch(context: Any) -> None:
        context.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" or "Content Security Policy" in m.text
                else None
            ),
        )
        context.on("weberror", lambda error: errors.append(str(error.error)))

    async with chromium() as browser:
        contexts = await signed_in_devices(browser, up, watch)
        yield contexts, errors
        await close_devices(contexts)


async def test_a_collection_is_made_browsed_searched_and_deleted(
    devices: tuple[dict[str, Any], list[str]], up: Up
) -> None:
    contexts, errors = devices
    page = await contexts["laptop"].new_page()
    await page.goto(up.dashboard)
    await page.click("nav >> text=Collections")
    await page.wait_for_url("**/ui/collections")
    new = page.locator("details.new").first
    await new.locator("summary").click()
    await new.locator("input[name=name]").fill("patients")
    await new.locator("button[type=submit]").click()
    await page.locator(".banner.ok", has_text="Collection patients created.").wait_for()
    assert await page.locator("p.empty", has_text="No items").count() == 1

    items = [{"key": f"patient-{i:03}", "value": f'{{"n": {i}}}'} for i in range(70)]
    items.append({"key": "visit-1", "value": '{"where": "north"}'})
    async with up.api() as api:
        put = await api.post("/collections/patients", json={"items": items})
        assert put.json() == {"upserted": 71, "error": None}

    await page.fill("#key", "patient-*")
    await page.click("form.search button")
    await page.wait_for_url("**/ui/collections/patients?key=patient-*")
    rows = page.locator("tr[data-key]")
    assert await rows.count() == 50
    await page.click("a[rel=next]")
    await page.locator("tr[data-key='patient-069']").wait_for()
    assert await rows.count() == 20
    assert await page.locator("a[rel=next]").count() == 0

    await page.goto(f"{up.dashboard}/collections/patients?key=visit-*")
    await page.click("tr[data-key='visit-1'] a")
    await page.locator("pre.value").wait_for()
    assert await page.locator("pre.value").inner_text() == '{\n  "where": "north"\n}'
    await page.click("button:has-text('Delete this item')")
    await page.locator(".banner.ok", has_text="Item deleted.").wait_for()
    assert await page.locator("tr[data-key='visit-1']").count() == 0

    for name, device in (("laptop", LAPTOP), ("phone", PHONE)):
        view = page if name == "laptop" else await contexts[name].new_page()
        if view is not page:
            await view.goto(f"{up.dashboard}/collections/patients")
        width = await view.evaluate("document.documentElement.scrollWidth")
        assert width <= device["viewport"]["width"], f"the collection page on a {name}"
        await shot(view, f"{name}-collection")
        if view is not page:
            await view.close()

    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.goto(f"{up.dashboard}/collections")
    await page.click("tr[data-name='patients'] button:has-text('Delete')")
    await page.locator(".banner.ok", has_text="Collection patients deleted").wait_for()
    assert asked == ["Delete the collection patients and its 70 items?"]
    assert await page.locator("tr[data-name='patients']").count() == 0
    await page.close()
    assert errors == []
