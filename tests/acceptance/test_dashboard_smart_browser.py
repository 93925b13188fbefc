"""Smart workers in the dashboard, in headless Chromium against ``fulmen up`` with its runner
(fulmen_testing.browser): a worker made through the runner's API is listed with its schedule,
run by hand from its page until its log line shows, and deleted after ticking the box. No page
logs an error to the console (a refusal under the Content-Security-Policy is one).
Screenshots of the list and of a worker's page, on a laptop and a phone, go to
``test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.browser import chromium, close_devices, shot, signed_in_devices
from fulmen_testing.runner.scripts import ECHO
from fulmen_testing.up import Up, fulmen_up

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def up(tmp_path: Path) -> AsyncIterator[Up]:
    async with fulmen_up(tmp_path) as running:
        yield running


async def make_worker(up: Up) -> dict[str, Any]:
    """A scheduled worker, made as the banner's example does: the runner's API, its token."""
    line = next(line for line in up.lines if line.startswith("Runner: "))
    url, token_file = line.split()[1], Path(line.split("bearer token in ")[1].rstrip(")"))
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as runner:
        made = await runner.post(
            "/workers",
            json={"script": ECHO, "name": "nightly", "type": "module",
                  "schedule": "*/5 * * * *", "run_on_create": False},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body


async def test_a_smart_worker_is_listed_run_and_deleted(up: Up) -> None:
    made = await make_worker(up)
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
        context.on("weberror", lambda e: errors.append(str(e.error)))

    async with chromium() as browser:
        devices = await signed_in_devices(browser, up, watch)
        try:
            laptop = await devices["laptop"].new_page()
            await laptop.goto(up.dashboard)
            await laptop.get_by_role("link", name="Smart workers").click()
            row = laptop.locator(f'tr[data-id="{made["id"]}"]')
            await row.wait_for()
            assert "*/5 * * * * (UTC)" in await row.inner_text()
            await shot(laptop, "laptop-smart-workers")

            await row.get_by_role("link", name="nightly").click()
            await laptop.get_by_role("button", name="Run now").click()
            await laptop.wait_for_url("**?done=ran")
            for _ in range(60):  # the page is re-read as a user would, until the run shows
                if "tasks ran" in await laptop.locator(".smart-logs").inner_text():
                    break
                await laptop.wait_for_timeout(250)
                await laptop.reload()
            assert "tasks ran" in await laptop.locator(".smart-logs").inner_text()
            assert "manual" in await laptop.locator(".smart-runs").inner_text()
            await shot(laptop, "laptop-smart-worker")

            phone = await devices["phone"].new_page()
            await phone.goto(laptop.url)
            await shot(phone, "phone-smart-worker")
            await phone.goto(f"{up.dashboard}/smart-workers")
            await shot(phone, "phone-smart-workers")

            await laptop.get_by_role("checkbox").check()
            await laptop.get_by_role("button", name="Delete worker").click()
            await laptop.wait_for_url("**/smart-workers?done=deleted")
            assert await laptop.locator(f'tr[data-id="{made["id"]}"]').count() == 0
        finally:
            await close_devices(devices)
    assert errors == []
