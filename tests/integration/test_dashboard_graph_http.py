"""The workflow page and the run page's graph over HTTP, on a real coordinator: signing in,
an unknown workflow, what the SVG shows, and that a name is text, never markup."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest

from fulmen.plan import Edge, Job
from fulmen.reasons import ExitReason, Reason
from fulmen.store import EnqueueRequest, RunCompletion, SQLStore, StepCompletion, StepStart
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Dashboard:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    """A coordinator with the seeded two-job chain, and a browser-like client signed in."""
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            origin = {"Origin": served.base_url.rstrip("/")}
            signed = await http.post(
                "/ui/login", data={"token": await api_token(store), "next": "/ui"}, headers=origin
            )
            assert signed.status_code == 303
            yield Dashboard(store, seeded, http)


def nodes(page: str) -> dict[str, str]:
    """Each node drawn, by id: its class attribute."""
    return dict(
        (node, css)
        for css, node in re.findall(
            r'<(?:a|g) [^>]*?class="node ([^"]+)" data-node="([^"]+)"', page
        )
    )


async def test_the_workflow_page_needs_a_signed_in_token(dashboard: Dashboard) -> None:
    url = f"/ui/workflows/{dashboard.seeded.workflow_id}"
    async with httpx2.AsyncClient(base_url=dashboard.http.base_url) as stranger:
        page = await stranger.get(url)
    assert page.status_code == 303
    assert page.headers["location"] == f"/ui/login?next={url}"


async def test_an_unknown_workflow_is_not_found(dashboard: Dashboard) -> None:
    page = await dashboard.http.get("/ui/workflows/no-such-workflow")
    assert page.status_code == 404
    assert "There is no workflow no-such-workflow." in page.text


async def test_the_workflow_page_draws_the_graph_and_shows_each_job(dashboard: Dashboard) -> None:
    seeded = dashboard.seeded
    listing = (await dashboard.http.get("/ui")).text
    assert f'href="/ui/workflows/{seeded.workflow_id}"' in listing

    page = (await dashboard.http.get(f"/ui/workflows/{seeded.workflow_id}")).text
    drawn = nodes(page)
    assert drawn[seeded.webhook_id] == "node-trigger"
    for job_id in seeded.job_ids:
        assert drawn[job_id] == "node-job"
        assert f'<a href="#job-{job_id}" class="node node-job"' in page  # each job node links
        assert f'<article class="job-section" id="job-{job_id}">' in page
    assert page.count("data-edge=") == len(seeded.job_ids)  # webhook → first → second
    assert ">on success</text>" in page and ">always</text>" in page
    assert '<pre class="code"' in page and "fn(lambda s: s)" in page
    webhook = f"{str(dashboard.http.base_url).rstrip('/')}/i/{seeded.webhook_id}"
    assert f'data-copy="{webhook}"' in page
    assert "/ui/static/graph.css" in page


async def test_names_and_conditions_in_the_svg_are_text(dashboard: Dashboard) -> None:
    stored = await dashboard.store.get_workflow(dashboard.seeded.workflow_id)
    evil = Job(
        id="evil", name="<script>alert(1)</script>", body="fn(lambda s: s)", adaptor="common"
    )
    edge = Edge(
        "e-evil",
        "evil",
        source_job_id=dashboard.seeded.job_ids[0],
        condition='state.get("x") == "</text><script>"',
        enabled=False,
    )
    await dashboard.store.replace_workflow(
        replace(
            stored.workflow,
            jobs=(*stored.workflow.jobs, evil),
            edges=(*stored.workflow.edges, edge),
        )
    )
    page = (await dashboard.http.get(f"/ui/workflows/{dashboard.seeded.workflow_id}")).text
    assert "<script>" not in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; (Python)</title>" in page
    assert "&lt;/text&gt;&lt;script&gt;" in page
    assert 'class="edge disabled expression" data-edge="e-evil"' in page


async def test_the_run_page_colours_each_job_by_its_outcome_and_links_to_its_step(
    dashboard: Dashboard,
) -> None:
    store, seeded = dashboard.store, dashboard.seeded
    stored = await store.get_workflow(seeded.workflow_id)
    third = Job(id="never", name="never", body="fn(lambda s: s)", adaptor="common")
    after = Edge("e-never", "never", source_job_id=seeded.job_ids[-1], condition="on_job_success")
    await store.replace_workflow(
        replace(
            stored.workflow,
            jobs=(*stored.workflow.jobs, third),
            edges=(*stored.workflow.edges, after),
        )
    )
    enqueued = await store.enqueue(
        EnqueueRequest(workflow_id=seeded.workflow_id, trigger_id=seeded.webhook_id)
    )
    run_id = enqueued.run_id
    await store.claim(1)
    await store.join_run(run_id)
    start = datetime.now(UTC)
    await store.start_run(run_id, timestamp=start)
    steps = []
    for index, (job_id, reason) in enumerate(
        zip(seeded.job_ids, (Reason.SUCCESS, Reason.FAIL), strict=False)
    ):
        step_id = f"step-{index}"
        at = start + timedelta(milliseconds=10 + 100 * index)
        await store.start_step(run_id, StepStart(step_id, job_id, None, timestamp=at))
        await store.complete_step(
            run_id, StepCompletion(step_id, ExitReason(reason), None, None, timestamp=at)
        )
        steps.append(step_id)
    await store.complete_run(
        run_id, RunCompletion(ExitReason(Reason.FAIL), None, start + timedelta(seconds=1))
    )

    page = (await dashboard.http.get(f"/ui/runs/{run_id}")).text
    drawn = nodes(page)
    first, second = seeded.job_ids[:2]
    assert drawn[first] == "node-job outcome-success"
    assert drawn[second] == "node-job outcome-fail"
    assert drawn["never"] == "node-job outcome-not-run"
    assert f'<a href="#step-{steps[1]}" class="node node-job outcome-fail"' in page
    assert f'id="step-{steps[1]}"' in page  # where that link lands
    assert "· fail</text>" in page and "· not run</text>" in page
    live = (await dashboard.http.get(f"/ui/runs/{run_id}/live")).text
    assert nodes(live) == drawn  # the live fragment redraws the same graph
