"""Roles in headless Chromium (issue 18), against a coordinator served on loopback: a project's
viewer opens a workflow and sees its graph and code but no control to edit or run it (and
the edit page's address answers "Not allowed"); its editor follows the Edit link, renames the
workflow and saves a new version; its owner finds its members and service tokens. No page logs
an error to the console. Screenshots of what
each sees go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fulmen.store import SQLStore
from fulmen_testing.browser import LAPTOP, chromium, shot, signed_in_as
from fulmen_testing.coordinator import Served, seed, serve, sqlite_store
from fulmen_testing.teams import Team, team

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[SQLStore, Served, Team]]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        yield store, served, await team(store, await seed(store))


def _watch(context: Any, errors: list[str]) -> None:
    context.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    context.on("weberror", lambda error: errors.append(str(error.error)))


async def test_a_viewer_reads_a_workflow_and_an_editor_edits_it(
    site: tuple[SQLStore, Served, Team],
) -> None:
    store, served, people = site
    workflow_id = people.seeded.workflow_id
    url = f"{served.base_url}/ui/workflows/{workflow_id}"
    errors: list[str] = []
    async with chromium() as browser:
        viewer = await signed_in_as(
            browser, served.base_url, store, people.users["viewer"].id, **LAPTOP
        )
        _watch(viewer, errors)
        page = await viewer.new_page()
        await page.goto(url)
        await page.get_by_role("heading", name="chain").wait_for()
        assert await page.locator("svg.graph, .graph svg, svg").count() > 0
        assert await page.get_by_text("fn(lambda s: s)").count() == 2  # both jobs' code
        assert await page.get_by_role("link", name="Edit").count() == 0
        assert await page.get_by_role("link", name="Run…").count() == 0
        assert await page.locator("form[method=post]").count() == 1  # signing out only
        await shot(page, "laptop-workflow-viewer")
        assert errors == []
        answer = await page.goto(f"{url}/edit")  # the browser logs the 403 it was answered
        assert answer is not None and answer.status == 403
        await page.get_by_role("heading", name="Not allowed").wait_for()
        assert [e for e in errors if "status of 403" not in e] == []
        errors.clear()
        await viewer.close()

        editor = await signed_in_as(
            browser, served.base_url, store, people.users["editor"].id, **LAPTOP
        )
        _watch(editor, errors)
        page = await editor.new_page()
        await page.goto(url)
        await page.get_by_role("link", name="Edit").click()
        await page.wait_for_url(f"{url}/edit")
        await page.fill("#name", "chain, renamed")
        await page.get_by_role("button", name="Save a new version").click()
        await page.get_by_text("Saved as version 2.").wait_for()
        await shot(page, "laptop-workflow-editor-saved")
        await editor.close()

        as_owner = people.users["owner"].id
        owner = await signed_in_as(browser, served.base_url, store, as_owner, **LAPTOP)
        _watch(owner, errors)
        page = await owner.new_page()
        await page.goto(f"{served.base_url}/ui")
        await page.get_by_role("link", name="Members").click()
        await page.get_by_role("heading", name="Add a member").wait_for()
        await shot(page, "laptop-members-owner")
        await page.goto(f"{served.base_url}/ui/tokens")
        await page.get_by_role("heading", name="Service tokens of tests").wait_for()
        await shot(page, "laptop-tokens-owner")
        await owner.close()
    stored = await store.get_workflow(workflow_id)
    assert (stored.version, stored.workflow.name) == (2, "chain, renamed")
    assert errors == []
