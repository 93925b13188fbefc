"""End to end, real processes on loopback (issue 16): a workflow whose Python job asks for a
package at a range or at ``latest`` is posted to ``fulmen server``, which saves it pinned; a
``fulmen worker`` runs each version with exactly the version pinned, installed from the same
package index (a small one on loopback serving real wheels: the outside world's edge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import Api, system
from fulmen_testing.python_index import python_index

pytestmark = pytest.mark.anyio

#: Reports the version of fulmen-probe the run imported, by its module and by its metadata.
REPORT = """
import importlib.metadata
fn(lambda state: {"data": {
    "module": VERSION,
    "metadata": importlib.metadata.version("fulmen-probe"),
}})
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ran(api: Api, hook: str) -> Any:
    """The run's output, once it also said (its ``Versions:`` line, from ``run:start``) the
    version of fulmen-probe installed for it: the one its job imported."""
    run = await api.finished(await api.hook(hook, {}), timeout=120)
    assert run["state"] == "success", run
    data = (await api.dataclip(run["final_dataclip_id"]))["data"]
    lines = [line["message"] for line in await api.logs(run["id"])]
    banner = next(text for text in lines if "Versions:" in str(text))
    named = [row.split() for row in str(banner).splitlines() if "fulmen-probe" in row]
    assert named == [["▸", "fulmen-probe", data["module"]]], banner
    return data


async def test_each_version_of_a_workflow_runs_the_packages_pinned_when_it_was_saved(
    tmp_path: Path,
) -> None:
    with python_index() as index:
        settings = {"FULMEN_PYTHON_INDEX": index.url}
        worker = {**settings, "WORKER_REPO_DIR": str(tmp_path / "repo")}
        async with system(tmp_path, coordinator=settings, worker=worker) as (_, _, api):
            workflow_id, hook = await api.workflow({"probe": REPORT}, [], adaptor="fulmen-probe@<2")
            saved = await api.get(f"/api/workflows/{workflow_id}")
            assert saved["jobs"][0]["adaptor"] == "fulmen-probe@1.0.0"
            assert await ran(api, hook) == {"module": "1.0.0", "metadata": "1.0.0"}

            document = {k: saved[k] for k in ("name", "jobs", "triggers", "edges")}
            document["jobs"][0]["adaptor"] = "fulmen-probe@latest"
            updated = await api.http.put(
                f"/api/workflows/{workflow_id}", json=document, headers=api.headers
            )
            assert updated.status_code == 200, updated.text
            assert updated.json()["jobs"][0]["adaptor"] == "fulmen-probe@2.0.0"
            assert await ran(api, hook) == {"module": "2.0.0", "metadata": "2.0.0"}
