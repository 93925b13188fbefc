"""The workflow editor in headless Chromium (Debian's, driven by Playwright) against ``fulmen
up``, as a user: a workflow of three jobs and a failure edge made from an empty project, code
typed into the code editor (CodeMirror, built from npm by the coordinator), a refused body's
line marked, a concurrent save refused with nothing lost. No console error under the
dashboard's Content-Security-Policy. Screenshots of the job editor on a laptop and a phone go
to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fulmen.config import default_cache_dir
from fulmen.coordinator.dashboard.bundle import EditorBundle
from fulmen_testing.browser import (
    chromium,
    close_devices,
    shot,
    signed_in_devices,
)
from fulmen_testing.up import Up, fulmen_up

pytestmark = pytest.mark.anyio


def must_have(what: str) -> None:
    """Fail in CI, where scripts/test installs everything; skip on a bare machine."""
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def bundle() -> EditorBundle:
    """The code editor, built (npm ci, esbuild) into the cache ``fulmen up`` reads, before it
    starts: so the pages have it from the first, as on a coordinator that built it before."""
    built = EditorBundle(Path(default_cache_dir("dashboard", os.environ)))
    await built.build()
    if not built.ready:
        must_have(built.status())
    return built


@pytest.fixture(scope="module")
async def up(tmp_path_factory: pytest.TempPathFactory, bundle: EditorBundle) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path_factory.mktemp("up"), "--no-runner") as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def complaints() -> list[str]:
    """Every console error and uncaught exception, on any page (a CSP refusal is one)."""
    return []


@pytest.fixture(scope="module")
async def devices(browser: Any, up: Up, complaints: list[str]) -> AsyncIterator[dict[str, Any]]:
    def watch(context: Any) -> None:
        context.on(
            "console",
            lambda message: complaints.append(message.text) if message.type == "error" else None,
        )
        context.on("weberror", lambda error: complaints.append(str(error.error)))

    contexts = await signed_in_devices(browser, up, watch)
    yield contexts
    await close_devices(contexts)


async def submit(page: Any, button: str) -> None:
    """Press a form button and wait for the page the server answers with."""
    async with page.expect_navigation():
        await page.click(button)
    await page.locator("html[data-code-editor=ready]").wait_for()


async def type_code(page: Any, job: int, text: str, *, replace: bool = True) -> None:
    """Type into job ``job``'s code editor as a user does (its auto-indent included)."""
    editor = page.locator(f"#jobs-{job}-body + .code-editor .cm-content")
    await editor.click()
    await page.keyboard.press("Control+a" if replace else "Control+End")
    await page.keyboard.type(text)


async def test_a_workflow_of_three_jobs_and_a_failure_edge_made_in_the_browser(
    devices: dict[str, Any], up: Up, complaints: list[str]
) -> None:
    async with up.api() as api:
        made = await api.post("/api/projects", json={"name": "Editing"})
        assert made.status_code == 201, made.text
        project_id = made.json()["id"]
    page = await devices["laptop"].new_page()
    await page.goto(up.dashboard)
    project = page.locator("section.project", has_text="Editing")
    assert await project.locator(".empty").inner_text() == "No workflows in this project."
    async with page.expect_navigation():
        await project.get_by_role("link", name="New workflow").click()
    assert page.url.endswith(f"/ui/projects/{project_id}/workflows/new")
    await page.locator("html[data-code-editor=ready]").wait_for()
    # the code editor took the textarea's place, with line numbers and Python highlighting
    assert await page.locator("#jobs-0-body").is_hidden()
    assert await page.locator(".code-editor .cm-lineNumbers").count() == 1
    assert await page.locator(".code-editor .cm-content .cm-line span").count() > 0  # tokens

    await page.fill("#name", "Nightly sync")
    await page.fill("#jobs-0-name", "fetch")
    await submit(page, "button:has-text('Add a job')")
    assert await page.evaluate("document.activeElement.id") == "jobs-1-name"  # keyboard next
    await page.fill("#jobs-1-name", "transform")
    await submit(page, "button:has-text('Add a job')")
    await page.fill("#jobs-2-name", "alert")
    await type_code(page, 2, "@fn\ndef alert(state):\nprint('transform failed')\nreturn state")
    # the edge the button made (transform -> alert, on success) becomes a failure edge
    assert await page.locator("#edges-2-source option:checked").inner_text() == "transform"
    await page.select_option("#edges-2-condition", "on_job_failure")
    await shot(page, "laptop-job-editor-new")
    await submit(page, "button:has-text('Create workflow')")

    assert "/edit?saved=1" in page.url
    assert await page.get_by_role("status").inner_text() == "Saved as version 1."
    assert "version 1" in await page.locator("h1").inner_text()
    async with up.api() as api:
        (saved,) = (await api.get(f"/api/projects/{project_id}/workflows")).json()["items"]
    assert [j["name"] for j in saved["jobs"]] == ["fetch", "transform", "alert"]
    alert = saved["jobs"][2]["body"]
    assert alert == "@fn\ndef alert(state):\n    print('transform failed')\n    return state"
    names = {j["id"]: j["name"] for j in saved["jobs"]}
    failure = [e for e in saved["edges"] if e["condition"] == "on_job_failure"]
    assert [(names[e["source_job_id"]], names[e["target_job_id"]]) for e in failure] == [
        ("transform", "alert")
    ]

    # a body that does not parse: refused, its line marked in the editor, the rest kept
    await type_code(page, 1, "    return state +", replace=False)  # on line 4, the last
    await submit(page, "button:has-text('Save a new version')")
    assert "/edit" in page.url and await page.get_by_role("alert").count() >= 1
    message = await page.locator("#jobs-1-body-error").inner_text()
    assert "does not parse as Python" in message and "line 4" in message
    marked = page.locator("#jobs-1-body + .code-editor .cm-line.cm-fulmen-error")
    assert await marked.count() == 1
    assert await marked.inner_text() == "    return state +"
    assert await page.locator("#jobs-2-name").input_value() == "alert"
    await shot(page, "laptop-job-editor-syntax-error")

    # someone else saves meanwhile: this save is refused, nothing typed is lost
    async with up.api() as api:
        theirs = (await api.get(f"/api/workflows/{saved['id']}")).json()
        body = {k: theirs[k] for k in ("id", "name", "concurrency", "retry", "jobs", "triggers")}
        body |= {"edges": theirs["edges"], "name": "Renamed elsewhere"}
        put = await api.put(f"/api/workflows/{saved['id']}?expected_version=1", json=body)
        assert put.status_code == 200, put.text
    await type_code(page, 1, "@fn\ndef transform(state):\nreturn state")
    await submit(page, "button:has-text('Save a new version')")
    conflict = page.locator("#conflict")
    assert "someone else saved this workflow meanwhile" in await conflict.inner_text()
    assert "now at version 2" in await conflict.inner_text()
    code = await page.locator("#jobs-1-body + .code-editor .cm-content").inner_text()
    assert "def transform(state):" in code
    assert await page.locator("#name").input_value() == "Nightly sync"
    await submit(page, "#conflict button")
    assert await page.get_by_role("status").inner_text() == "Saved as version 3."
    await shot(page, "laptop-job-editor")
    await page.close()

    phone = await devices["phone"].new_page()
    await phone.goto(f"{up.dashboard}/workflows/{saved['id']}/edit")
    await phone.locator("html[data-code-editor=ready]").wait_for()
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the job editor is {width}px wide on a phone"
    await shot(phone, "phone-job-editor")
    await phone.close()
    # Chromium logs the refused saves' statuses, and nothing else
    assert complaints == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)",
        "Failed to load resource: the server responded with a status of 409 (Conflict)",
    ]
