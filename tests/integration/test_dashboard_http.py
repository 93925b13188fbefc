"""The dashboard over HTTP, on a real coordinator with runs written through the store as a
worker would report them: signing in, the pages, what they never show, and retries."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx2
import pytest

from fulmen.plan import Job
from fulmen.reasons import ExitReason, Reason
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    LogLine,
    NewDataclip,
    Queue,
    RunCompletion,
    SQLStore,
    StepCompletion,
    StepStart,
)
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-pw"  # the seeded credential's password


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Dashboard:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    token: str

    async def sign_in(self) -> httpx2.Response:
        return await self.http.post(
            "/ui/login", data={"token": self.token, "next": "/ui/runs"}, headers=self.origin
        )

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            yield Dashboard(store, seeded, http, await api_token(store))


async def finished_run(
    store: SQLStore,
    seeded: Seeded,
    *,
    fail_second: bool = False,
    lines: int = 3,
    body: dict[str, object] | None = None,
) -> str:
    """A webhook run that a worker took through both jobs (the second failing if asked)."""
    enqueued = await store.enqueue(
        EnqueueRequest(
            workflow_id=seeded.workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, body or {"items": [1, 2]}),
            trigger_id=seeded.webhook_id,
        )
    )
    run_id = enqueued.run_id
    (claimed,) = await store.claim(1)
    assert claimed.id == run_id
    await store.join_run(run_id)
    start = datetime.now(UTC)
    await store.start_run(run_id, timestamp=start)
    previous = enqueued.dataclip_id
    for index, job_id in enumerate(seeded.job_ids):
        step_id = str(uuid4())
        began = start + timedelta(milliseconds=10 + 100 * index)
        await store.start_step(run_id, StepStart(step_id, job_id, previous, timestamp=began))
        await store.append_logs(
            run_id,
            [
                LogLine(
                    f"job {index} line {n}",
                    began + timedelta(microseconds=n),
                    level="warn" if n == 1 else "info",
                    step_id=step_id,
                )
                for n in range(lines)
            ],
        )
        failing = fail_second and index == 1
        reason = (
            ExitReason(Reason.FAIL, "ValueError", "no items to process")
            if failing
            else ExitReason(Reason.SUCCESS)
        )
        output = str(uuid4())
        await store.complete_step(
            run_id,
            StepCompletion(
                step_id,
                reason,
                output,
                {"data": {"step": index}, "configuration": {"password": SECRET}},
                timestamp=began + timedelta(milliseconds=50),
            ),
        )
        previous = output
    final = ExitReason(Reason.FAIL, "ValueError", "no items to process") if fail_second else None
    await store.complete_run(
        run_id,
        RunCompletion(final or ExitReason(Reason.SUCCESS), previous, start + timedelta(seconds=1)),
    )
    return run_id


async def test_pages_need_a_signed_in_token(dashboard: Dashboard) -> None:
    http = dashboard.http
    root = await http.get("/")
    assert root.status_code == 303 and root.headers["location"] == "/ui"
    page = await http.get("/ui/runs?state=failed")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/runs%3Fstate%3Dfailed"
    fetched = await http.get("/ui/runs/rows", headers={"x-fulmen-fetch": "1"})
    assert fetched.status_code == 401
    assert (await http.get("/ui/status")).status_code == 303
    login = await http.get("/ui/login")
    assert login.status_code == 200 and 'name="token"' in login.text

    wrong = await http.post("/ui/login", data={"token": "fmn_abc_def"}, headers=dashboard.origin)
    assert wrong.status_code == 401 and "That token is not valid." in wrong.text
    elsewhere = await http.post(
        "/ui/login", data={"token": dashboard.token}, headers={"Origin": "http://evil.example"}
    )
    assert elsewhere.status_code == 403 and "fulmen_session" not in elsewhere.headers.get(
        "set-cookie", ""
    )


async def test_signing_in_sets_a_private_cookie_and_revoking_the_token_ends_it(
    dashboard: Dashboard,
) -> None:
    signed = await dashboard.sign_in()
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/runs"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("fulmen_session=")
    for part in ("HttpOnly", "Path=/ui", "SameSite=strict"):
        assert part.lower() in cookie.lower(), cookie
    assert (await dashboard.http.get("/ui")).status_code == 200

    await dashboard.store.delete_api_token(dashboard.token.split("_")[1])
    assert (await dashboard.http.get("/ui")).status_code == 303


async def test_workflows_show_their_triggers_and_copyable_webhook_urls(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    await finished_run(dashboard.store, dashboard.seeded)
    page = (await dashboard.http.get("/ui")).text
    url = f"{str(dashboard.http.base_url).rstrip('/')}/i/{dashboard.seeded.webhook_id}"
    assert f'value="{url}"' in page and f'data-copy="{url}"' in page
    assert "chain" in page and "Last run:" in page
    await dashboard.store.enqueue(EnqueueRequest(workflow_id=dashboard.seeded.workflow_id))
    figures = (await dashboard.http.get("/ui/status")).json()
    assert (figures["queued"], figures["workers"]) == (1, 0)


async def test_workflows_show_each_jobs_language_and_adaptor(dashboard: Dashboard) -> None:
    """Issue 15: a JavaScript job beside Python ones, its exact adaptor on hover."""
    stored = await dashboard.store.get_workflow(dashboard.seeded.workflow_id)
    js = Job(
        id="js",
        name="tally",
        body="fn(s => s)",
        adaptor="@openfn/language-common@3.3.4",
        language="javascript",
    )
    await dashboard.store.replace_workflow(
        replace(stored.workflow, jobs=(*stored.workflow.jobs, js))
    )
    await dashboard.sign_in()
    page = (await dashboard.http.get("/ui")).text
    jobs = re.findall(
        r'<span class="job" data-language="(\w+)" title="([^"]+)">([\w-]+) '
        r'<span class="lang">(\w+)</span></span>',
        page,
    )
    assert jobs == [
        ("python", "common", "first", "Python"),
        ("python", "common", "second", "Python"),
        ("javascript", "@openfn/language-common@3.3.4", "tally", "JavaScript"),
    ]


async def test_workflows_show_each_python_jobs_pinned_packages(dashboard: Dashboard) -> None:
    """Issue 16: the versions this version of the workflow installs, beside the job."""
    stored = await dashboard.store.get_workflow(dashboard.seeded.workflow_id)
    first, second = stored.workflow.jobs
    pinned = replace(first, adaptor="fulmen-probe@2.0.0", requirements=("httpx[http2]==0.28.1",))
    await dashboard.store.replace_workflow(replace(stored.workflow, jobs=(pinned, second)))
    await dashboard.sign_in()
    page = (await dashboard.http.get("/ui")).text
    chips = re.findall(r'<span class="job" [^>]*>([\w-]+) .*?</span></span>', page)
    assert chips == ["first", "second"]
    shown = re.findall(r'<span class="pins"[^>]*>([^<]*)</span>', page)
    assert shown == ["fulmen-probe 2.0.0, httpx 0.28.1"]  # none for second: common, no pins


async def test_a_queued_run_no_worker_can_run_says_what_it_waits_for(
    dashboard: Dashboard,
) -> None:
    """Issue 15: no worker is connected, so none runs the JavaScript the run needs."""
    stored = await dashboard.store.get_workflow(dashboard.seeded.workflow_id)
    js = replace(stored.workflow.jobs[0], adaptor="@openfn/language-common@3.3.4")
    js = replace(js, body="fn(s => s)", language="javascript")
    await dashboard.store.replace_workflow(
        replace(stored.workflow, jobs=(js, *stored.workflow.jobs[1:]))
    )
    queued = await dashboard.store.enqueue(
        EnqueueRequest(
            workflow_id=dashboard.seeded.workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"items": [1]}),
            trigger_id=dashboard.seeded.webhook_id,
        )
    )
    await dashboard.sign_in()
    page = (await dashboard.http.get(f"/ui/runs/{queued.run_id}")).text
    assert re.search(
        r"<p [^>]*data-waiting>Waiting for a worker that runs Python and JavaScript: "
        r"no worker connected now runs them all\.</p>",
        page,
    ), page
    api = await dashboard.http.get(
        f"/api/runs/{queued.run_id}", headers={"Authorization": f"Bearer {dashboard.token}"}
    )
    assert api.json()["waiting_for"] == "a worker that runs Python and JavaScript"


async def test_failed_runs_are_marked_in_words_and_colour_and_can_be_filtered(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    good = await finished_run(dashboard.store, dashboard.seeded)
    bad = await finished_run(dashboard.store, dashboard.seeded, fail_second=True)
    listing = (await dashboard.http.get("/ui/runs")).text
    rows = re.findall(r'<tr class="run (\w+)" data-id="([^"]+)">', listing)
    assert rows == [("bad", bad), ("ok", good)]  # newest first
    assert '<span class="state bad">failed</span>' in listing
    assert "ValueError: no items to process" in listing

    only_failed = (await dashboard.http.get("/ui/runs/rows?state=failed")).text
    assert bad in only_failed and good not in only_failed
    other = (await dashboard.http.get(f"/ui/runs/rows?workflow_id={uuid4()}")).text
    assert "No runs match" in other


async def test_a_run_page_shows_steps_logs_and_dataclips_without_credentials(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    run_id = await finished_run(dashboard.store, dashboard.seeded, fail_second=True)
    page = (await dashboard.http.get(f"/ui/runs/{run_id}")).text
    assert re.findall(r'data-job="(\w+)"', page) == ["first", "second"]
    assert "50 ms" in page  # each step's duration
    assert '<p class="reason-line">ValueError: no items to process</p>' in page
    assert page.count('class="line l-') == 6 and 'class="line l-warn"' in page
    assert "Retry from second" in page

    detail = await dashboard.store.get_run(run_id)
    for step in detail.steps:
        clip = (await dashboard.http.get(f"/ui/dataclips/{step.output_dataclip_id}")).text
        assert "&#34;step&#34;" in clip and "configuration" not in clip
    pages = [
        page,
        (await dashboard.http.get("/ui/runs")).text,
        (await dashboard.http.get("/ui")).text,
    ]
    assert not any(SECRET in text for text in pages)


async def test_logs_come_a_page_at_a_time(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    run_id = await finished_run(dashboard.store, dashboard.seeded, lines=1300)
    page = (await dashboard.http.get(f"/ui/runs/{run_id}")).text
    assert page.count('class="line l-') == 1000
    cursor = re.search(r'data-next="([^"]+)"', page)
    assert cursor is not None
    rest = await dashboard.http.get(f"/ui/runs/{run_id}/logs", params={"cursor": cursor[1]})
    assert rest.text.count('class="line l-') == 1000
    last = await dashboard.http.get(
        f"/ui/runs/{run_id}/logs", params={"cursor": rest.headers["x-next-cursor"]}
    )
    assert last.text.count('class="line l-') == 600 and last.headers["x-next-cursor"] == ""


async def test_retry_from_a_step_is_a_new_run_of_the_same_work_order(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    run_id = await finished_run(dashboard.store, dashboard.seeded, fail_second=True)
    second = (await dashboard.store.get_run(run_id)).steps[1]
    refused = await dashboard.http.post(
        f"/ui/runs/{run_id}/retry",
        data={"step_id": second.id},
        headers={"Origin": "http://evil.example"},
    )
    assert refused.headers["location"].startswith(f"/ui/runs/{run_id}?error=")

    retried = await dashboard.http.post(
        f"/ui/runs/{run_id}/retry", data={"step_id": second.id}, headers=dashboard.origin
    )
    assert retried.status_code == 303
    new_id = retried.headers["location"].removeprefix("/ui/runs/")
    old, new = (
        (await dashboard.store.get_run(run_id)).run,
        (await dashboard.store.get_run(new_id)).run,
    )
    assert new.work_order_id == old.work_order_id
    assert new.rerun_of == old.id  # recorded as a rerun, as the API's rerun does
    assert new.starting_node_id == second.job_id
    assert new.dataclip_id == second.input_dataclip_id
    assert new.queue == Queue.MANUAL and new.state.value == "available"
    runs = await dashboard.store.list_runs()
    assert len(runs.items) == 2  # the refused retry made none

    whole = await dashboard.http.post(f"/ui/runs/{run_id}/retry", headers=dashboard.origin)
    again = (await dashboard.store.get_run(whole.headers["location"].rsplit("/", 1)[1])).run
    assert (again.starting_node_id, again.dataclip_id) == (old.starting_node_id, old.dataclip_id)
    page = (await dashboard.http.get(f"/ui/runs/{new_id}")).text
    assert page.count("<li") >= 3 and "(this run)" in page  # the work order's runs

    await dashboard.store.wipe_dataclip(second.input_dataclip_id or "")
    wiped = await dashboard.http.post(
        f"/ui/runs/{run_id}/retry", data={"step_id": second.id}, headers=dashboard.origin
    )
    assert "wiped" in httpx2.URL(wiped.headers["location"]).params["error"]
