"""The dashboard's runs workspace over HTTP (issue 17), on a real coordinator and SQLite:
running a workflow by hand, cancelling, bulk reruns, finding runs and exporting them. Bad
input is a clear 4xx with nothing made; every page needs signing in; every post is refused
from another site."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from test_dashboard_http import Dashboard, finished_run

from fulmen.lifecycle import RunState
from fulmen.store import EnqueueRequest, LogLine, RunFilter
from fulmen_testing.coordinator import api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

EVIL = {"Origin": "http://evil.example"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    """As test_dashboard_http's: a seeded SQLite store served on loopback, not signed in."""
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            yield Dashboard(store, seeded, http, await api_token(store))


async def run_count(d: Dashboard) -> int:
    return len((await d.store.list_runs(RunFilter(), limit=1000)).items)


async def test_every_new_page_and_export_needs_signing_in(dashboard: Dashboard) -> None:
    http, w = dashboard.http, dashboard.seeded.workflow_id
    for path in (f"/ui/workflows/{w}/run", "/ui/runs.csv", "/ui/runs.json"):
        answer = await http.get(path)
        assert answer.status_code == 303 and "/ui/login" in answer.headers["location"], path
    for path in (f"/ui/workflows/{w}/run", "/ui/runs/rerun", "/ui/runs/x/cancel"):
        answer = await http.post(path, headers=dashboard.origin)
        assert answer.status_code == 401, path
    assert await run_count(dashboard) == 0


async def test_a_run_by_hand_starts_from_written_json_and_lands_on_its_page(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    w = dashboard.seeded.workflow_id
    form = await dashboard.http.get(f"/ui/workflows/{w}/run")
    assert form.status_code == 200 and 'id="manual-run"' in form.text
    assert f'href="/ui/workflows/{w}/run"' in (await dashboard.http.get("/ui")).text

    started = await dashboard.http.post(
        f"/ui/workflows/{w}/run",
        data={"input": '{"patients": [1, 2]}', "starting_node_id": ""},
        headers=dashboard.origin,
    )
    assert started.status_code == 303
    run_id = started.headers["location"].removeprefix("/ui/runs/")
    run = (await dashboard.store.get_run(run_id)).run
    assert (run.queue, run.state) == ("manual", RunState.AVAILABLE)
    assert run.dataclip_id is not None
    assert (await dashboard.store.get_dataclip(run.dataclip_id)).body == {"patients": [1, 2]}
    page = await dashboard.http.get(started.headers["location"])
    assert "Cancel run" in page.text  # queued: may be cancelled


async def test_a_run_by_hand_from_an_earlier_input_reuses_that_dataclip(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    first = await finished_run(dashboard.store, dashboard.seeded, body={"from": "webhook"})
    clip = (await dashboard.store.get_run(first)).run.dataclip_id
    assert clip is not None
    w = dashboard.seeded.workflow_id
    form = (await dashboard.http.get(f"/ui/workflows/{w}/run")).text
    assert f'<option value="{clip}"' in form and f"of run {first[:8]}" in form

    started = await dashboard.http.post(
        f"/ui/workflows/{w}/run", data={"dataclip_id": clip}, headers=dashboard.origin
    )
    assert started.status_code == 303
    run_id = started.headers["location"].removeprefix("/ui/runs/")
    assert (await dashboard.store.get_run(run_id)).run.dataclip_id == clip


@pytest.mark.parametrize(
    ("text", "status", "says"),
    [
        ('{"a": 1,}', 400, "The input is not JSON: Expecting property name"),
        ("[1, 2]", 400, "must be a JSON object ({...}), not a array"),
        ('{"n": 99999999999999999999}', 400, "beyond 64 bits"),
    ],
)
async def test_a_run_by_hand_with_bad_input_says_why_and_makes_nothing(
    dashboard: Dashboard, text: str, status: int, says: str
) -> None:
    await dashboard.sign_in()
    w = dashboard.seeded.workflow_id
    refused = await dashboard.http.post(
        f"/ui/workflows/{w}/run", data={"input": text}, headers=dashboard.origin
    )
    assert refused.status_code == status
    assert says in refused.text.replace("&#34;", '"').replace("&#39;", "'")
    assert text.replace('"', "&#34;") in refused.text  # the text is kept to fix
    assert await run_count(dashboard) == 0


async def test_a_run_by_hand_refuses_unknown_things_and_other_sites(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    w, http = dashboard.seeded.workflow_id, dashboard.http
    missing = await http.post(
        "/ui/workflows/nope/run", data={"input": "{}"}, headers=dashboard.origin
    )
    assert missing.status_code == 404
    clip = await http.post(
        f"/ui/workflows/{w}/run", data={"dataclip_id": "nope"}, headers=dashboard.origin
    )
    assert clip.status_code == 404 and "is not a dataclip of project" in clip.text
    node = await http.post(
        f"/ui/workflows/{w}/run",
        data={"input": "{}", "starting_node_id": "nope"},
        headers=dashboard.origin,
    )
    assert 400 <= node.status_code < 500
    elsewhere = await http.post(f"/ui/workflows/{w}/run", data={"input": "{}"}, headers=EVIL)
    assert elsewhere.status_code == 403 and "from this site only" in elsewhere.text
    assert await run_count(dashboard) == 0


async def test_cancel_ends_a_queued_run_and_is_refused_for_a_finished_one(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    queued = (await dashboard.store.enqueue(EnqueueRequest(dashboard.seeded.workflow_id))).run_id
    http = dashboard.http
    elsewhere = await http.post(f"/ui/runs/{queued}/cancel", headers=EVIL)
    assert "error=" in elsewhere.headers["location"]
    assert (await dashboard.store.get_run(queued)).run.state is RunState.AVAILABLE

    cancelled = await http.post(f"/ui/runs/{queued}/cancel", headers=dashboard.origin)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/ui/runs/{queued}"
    assert (await dashboard.store.get_run(queued)).run.state is RunState.CANCELLED
    page = (await http.get(f"/ui/runs/{queued}")).text
    assert "This run was cancelled" in page and "Cancel run" not in page

    again = await http.post(f"/ui/runs/{queued}/cancel", headers=dashboard.origin)
    shown = (await http.get(again.headers["location"])).text
    assert "Could not cancel" in shown
    done = await finished_run(dashboard.store, dashboard.seeded)
    assert "Cancel run" not in (await http.get(f"/ui/runs/{done}")).text


async def test_bulk_rerun_starts_what_it_can_and_says_what_it_could_not(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    store, seeded = dashboard.store, dashboard.seeded
    one = (await store.get_run(await finished_run(store, seeded))).run.work_order_id
    two = (await store.get_run(await finished_run(store, seeded))).run.work_order_id
    queued = (await store.enqueue(EnqueueRequest(seeded.workflow_id))).work_order_id
    listing = (await dashboard.http.get("/ui/runs")).text
    assert f'name="work_order_id" value="{one}"' in listing
    job = seeded.job_ids[1]

    answer = await dashboard.http.post(
        "/ui/runs/rerun",
        data={"work_order_id": [one, two, queued], "job_id": job},
        headers=dashboard.origin,
    )
    assert answer.status_code == 200
    assert 'data-started="2"' in answer.text and 'data-failed="1"' in answer.text
    assert queued[:8] in answer.text
    runs = (await store.list_runs(RunFilter(work_order_id=one))).items
    assert len(runs) == 2 and runs[0].starting_node_id == job

    none = await dashboard.http.post("/ui/runs/rerun", data={}, headers=dashboard.origin)
    assert none.status_code == 400 and "Select the runs" in none.text
    elsewhere = await dashboard.http.post(
        "/ui/runs/rerun", data={"work_order_id": [one]}, headers=EVIL
    )
    assert elsewhere.status_code == 403
    assert len((await store.list_runs(RunFilter(work_order_id=one))).items) == 2


async def test_runs_are_found_by_log_text_with_the_filters_in_the_url(
    dashboard: Dashboard,
) -> None:
    await dashboard.sign_in()
    store, seeded = dashboard.store, dashboard.seeded
    plain = await finished_run(store, seeded)
    marked = await finished_run(store, seeded, body={"clinic": "Kivu"})
    found = (await dashboard.http.get("/ui/runs?q=kivu")).text
    assert marked in found and plain not in found
    assert 'value="kivu"' in found
    assert 'href="/ui/runs.csv?q=kivu"' in found
    none = (await dashboard.http.get("/ui/runs?q=kivu&state=failed")).text
    assert marked not in none and "No runs match" in none
    work_order = (await store.get_run(plain)).run.work_order_id
    by_order = (await dashboard.http.get(f"/ui/runs?work_order_id={work_order}")).text
    assert plain in by_order and marked not in by_order
    later = (await dashboard.http.get("/ui/runs?since=2999-01-01T00:00")).text
    assert plain not in later


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("state=nope", "bad_state"),
        ("since=yesterday", "bad_time"),
        ("since=2026-02-01T00:00&until=2026-01-01T00:00", "bad_time_range"),
        ("q=" + "x" * 201, "search_too_long"),
    ],
)
async def test_bad_filters_are_a_clear_400_on_the_list_and_the_exports(
    dashboard: Dashboard, query: str, code: str
) -> None:
    await dashboard.sign_in()
    page = await dashboard.http.get(f"/ui/runs?{query}")
    assert page.status_code == 400 and f'data-code="{code}"' in page.text
    for kind in ("csv", "json"):
        export = await dashboard.http.get(f"/ui/runs.{kind}?{query}")
        assert export.status_code == 400 and export.json()["error"]["code"] == code
    cursor = await dashboard.http.get("/ui/runs?cursor=garbage")
    assert cursor.status_code == 400


async def test_exports_hold_the_filtered_runs_as_csv_and_json(dashboard: Dashboard) -> None:
    await dashboard.sign_in()
    store, seeded = dashboard.store, dashboard.seeded
    ok = await finished_run(store, seeded)
    bad = await finished_run(store, seeded, fail_second=True)
    await store.append_logs(bad, [LogLine("the needle", (await store.peek_run(bad)).inserted_at)])

    exported = await dashboard.http.get("/ui/runs.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["run_id"] for row in rows] == [bad, ok]
    assert rows[0]["state"] == "failed" and rows[0]["error_type"] == "ValueError"
    assert rows[1]["workflow"] == "chain" and float(rows[1]["duration_s"]) == 1.0
    assert rows[1]["work_order_id"] == (await store.peek_run(ok)).work_order_id

    found = await dashboard.http.get("/ui/runs.json?q=needle")
    assert found.headers["content-type"] == "application/json"
    (only,) = json.loads(found.text)
    assert only["run_id"] == bad and only["finished_at"].endswith("+00:00")
    assert json.loads((await dashboard.http.get("/ui/runs.json?q=nothing")).text) == []


async def test_the_api_takes_an_earlier_dataclip_as_a_manual_runs_input(
    dashboard: Dashboard,
) -> None:
    """The same path as the form's: ``dataclip_id`` instead of ``input``, not both."""
    first = await finished_run(dashboard.store, dashboard.seeded)
    clip = (await dashboard.store.get_run(first)).run.dataclip_id
    url = f"/api/workflows/{dashboard.seeded.workflow_id}/runs"
    bearer = {"Authorization": f"Bearer {dashboard.token}"}
    made = await dashboard.http.post(url, json={"dataclip_id": clip}, headers=bearer)
    assert made.status_code == 201 and made.json()["dataclip_id"] == clip
    both = await dashboard.http.post(url, json={"dataclip_id": clip, "input": {}}, headers=bearer)
    assert both.status_code == 422
    assert both.json()["error"]["code"] == "input_and_dataclip"
