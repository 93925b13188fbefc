"""The audit trail in headless Chromium (Debian's, driven by Playwright), as a user: a job's
body edited in the workflow editor and saved, then the project's audit trail opened from the
settings page, where the save is listed with who made it and its diff, the removed line and
the added one marked apart. No console error under the dashboard's Content-Security-Policy.
Screenshots on a laptop and a phone go to ``test-artifacts/dashboard/``.

The coordinator runs in this process (uvicorn on loopback, SQLite) without the code editor's
build, so the body is a plain text box: the editor's own browser test covers CodeMirror."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.browser import LAPTOP, PHONE, chromium, shot
from fulmen_testing.coordinator import Seeded, Served, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

NEW_BODY = "fn(lambda state: {**state, 'audited': True})"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Served, Seeded, str]]:
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, dashboard_cache_dir=str(tmp_path / "no-editor-build")) as running,
    ):
        yield running, await seed(store), await api_token(store, "ada's token")


async def signed_in(browser: Any, base: str, token: str, device: dict[str, Any]) -> Any:
    context = await browser.new_context(**device)
    page = await context.new_page()
    await page.goto(f"{base}/ui")
    assert "/ui/login" in page.url
    await page.fill("#token", token)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    return page


async def test_a_job_edited_in_the_browser_shows_on_the_audit_trail_with_its_diff(
    served: tuple[Served, Seeded, str],
) -> None:
    running, seeded, token = served
    base = running.base_url
    complaints: list[str] = []
    async with chromium() as browser:
        page = await signed_in(browser, base, token, LAPTOP)
        page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: complaints.append(str(error)))

        await page.goto(f"{base}/ui/workflows/{seeded.workflow_id}/edit")
        await page.fill("#jobs-0-body", NEW_BODY)
        async with page.expect_navigation():
            await page.click("button:has-text('Save a new version')")
        assert page.url.endswith("/edit?saved=2")

        await page.goto(f"{base}/ui/settings")
        async with page.expect_navigation():
            await (
                page.locator(f"#project-{seeded.project_id}")
                .get_by_role("link", name="Audit trail")
                .click()
            )
        assert page.url.endswith(f"/ui/projects/{seeded.project_id}/audit")
        record = page.locator("li[data-action='workflow.updated']")
        assert await record.count() == 1
        assert "by ada's token" in await record.locator(".audit-who").inner_text()
        removed = await record.locator(".diff-removed").all_inner_texts()
        added = await record.locator(".diff-added").all_inner_texts()
        assert "-    body: 'fn(lambda s: s)'" in removed
        assert "+    body: 'fn(lambda state: {**state, ''audited'': True})'" in added
        # the lines are told apart by more than their sign: added and removed are coloured
        colours = {
            kind: await record.locator(f".diff-{kind}").first.evaluate(
                "e => getComputedStyle(e).backgroundColor"
            )
            for kind in ("added", "removed", "context")
        }
        assert len(set(colours.values())) == 3, colours
        await shot(page, "laptop-audit-trail")

        phone = await signed_in(browser, base, token, PHONE)
        await phone.goto(f"{base}/ui/projects/{seeded.project_id}/audit")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the audit trail is {width}px wide on a phone"
        await shot(phone, "phone-audit-trail")
    assert complaints == []
