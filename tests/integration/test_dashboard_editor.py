"""Creating and editing workflows in the dashboard, over HTTP, on a real coordinator: the form
posted as a browser posts it, saved through the API's own save; every refusal a 4xx that names
its field (never a 500), sign-in and same-origin required, and a stale save refused with
nothing lost. The code editor's bundle is only served here (the browser test builds it)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from fulmen.coordinator.dashboard.bundle import EditorBundle, digest
from fulmen.store import SQLStore
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store
from fulmen_testing.forms import form_of

pytestmark = pytest.mark.anyio

PYTHON_JOB = "@fn\ndef step(state):\n    return state\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def error_of(html: str, field: str) -> str:
    """The message shown next to ``field``, or ""."""
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', html)
    return match.group(1) if match else ""


@dataclass
class Editor:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    api: httpx2.AsyncClient
    cache: Path

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}

    async def post(self, path: str, fields: dict[str, str], do: str = "save") -> httpx2.Response:
        return await self.http.post(path, data={**fields, "do": do}, headers=self.origin)

    async def empty_project(self) -> str:
        made = await self.api.post("/api/projects", json={"name": "empty"})
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


@pytest.fixture
async def editor(tmp_path: Path) -> AsyncIterator[Editor]:
    cache = tmp_path / "cache"
    async with (
        sqlite_store(str(tmp_path / "fulmen.db")) as store,
        serve(store, dashboard_cache_dir=str(cache)) as served,
    ):
        seeded = await seed(store)
        token = await api_token(store)
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(base_url=served.base_url) as http,
            httpx2.AsyncClient(base_url=served.base_url, headers=auth) as api,
        ):
            origin = {"Origin": served.base_url}
            signed = await http.post("/ui/login", data={"token": token}, headers=origin)
            assert signed.status_code == 303
            yield Editor(store, seeded, http, api, cache)


async def three_jobs(e: Editor, project_id: str) -> dict[str, str]:
    """The new-workflow form with three jobs (two added with the button), named and coded,
    the last reached when the second fails."""
    new = f"/ui/projects/{project_id}/workflows/new"
    page = await e.http.get(new)
    assert page.status_code == 200
    fields = form_of(page.text)
    for _ in range(2):
        added = await e.post(new, fields, "add-job")
        assert added.status_code == 200
        fields = form_of(added.text)
    fields |= {"name": "nightly sync", "jobs-0-name": "fetch", "jobs-1-name": "transform"}
    fields |= {"jobs-2-name": "alert", "jobs-2-body": "@fn\ndef alert(state):\n    return state\n"}
    assert fields["edges-2-source"] == f"job:{fields['jobs-1-id']}"
    fields["edges-2-condition"] = "on_job_failure"
    return fields


async def test_pages_need_sign_in_and_posts_need_this_site(editor: Editor) -> None:
    project_id = editor.seeded.project_id
    new = f"/ui/projects/{project_id}/workflows/new"
    async with httpx2.AsyncClient(base_url=str(editor.http.base_url)) as stranger:
        page = await stranger.get(new)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
        posted = await stranger.post(new, data={"name": "x"}, headers=editor.origin)
        assert posted.status_code == 401
    fields = form_of((await editor.http.get(new)).text) | {"name": "from elsewhere"}
    elsewhere = await editor.http.post(new, data=fields, headers={"Origin": "http://evil.example"})
    assert elsewhere.status_code == 403 and "Save from this site only." in elsewhere.text
    listed = (await editor.api.get(f"/api/projects/{project_id}/workflows")).json()["items"]
    assert [w["name"] for w in listed] == ["chain"]


async def test_a_workflow_made_in_the_form_is_saved_through_the_api(editor: Editor) -> None:
    project_id = await editor.empty_project()
    fields = await three_jobs(editor, project_id)
    fields |= {"jobs-1-requirements": "", "jobs-1-adaptor": "http"}
    saved = await editor.post(f"/ui/projects/{project_id}/workflows/new", fields)
    assert saved.status_code == 303, error_of(saved.text, "") or saved.text[-2000:]
    assert re.fullmatch(r"/ui/workflows/[\w-]+/edit\?saved=1", saved.headers["location"])
    page = await editor.http.get(saved.headers["location"])
    assert "Saved as version 1." in page.text and "Edit nightly sync" in page.text

    (made,) = (await editor.api.get(f"/api/projects/{project_id}/workflows")).json()["items"]
    assert [j["name"] for j in made["jobs"]] == ["fetch", "transform", "alert"]
    assert [j["adaptor"] for j in made["jobs"]] == ["common", "http", "common"]
    jobs = {j["id"]: j["name"] for j in made["jobs"]}
    edges = {
        (
            "webhook" if e["source_trigger_id"] else jobs[e["source_job_id"]],
            jobs[e["target_job_id"]],
        ): e["condition"]
        for e in made["edges"]
    }
    assert edges == {
        ("webhook", "fetch"): "always",
        ("fetch", "transform"): "on_job_success",
        ("transform", "alert"): "on_job_failure",
    }
    assert [t["type"] for t in made["triggers"]] == ["webhook"]


async def test_editing_saves_a_new_version_and_keeps_what_the_form_does_not_show(
    editor: Editor,
) -> None:
    workflow_id = editor.seeded.workflow_id
    before = (await editor.api.get(f"/api/workflows/{workflow_id}")).json()
    edit = f"/ui/workflows/{workflow_id}/edit"
    fields = form_of((await editor.http.get(edit)).text)
    assert (
        fields["version"] == "1" and fields["jobs-0-credential_id"] == editor.seeded.credential_id
    )
    added = form_of((await editor.post(edit, fields, "add-trigger:cron")).text)
    added = form_of((await editor.post(edit, added, "add-edge")).text)
    added |= {"triggers-1-cron_expression": "30 6 * * 1-5", "triggers-1-timezone": "Europe/Paris"}
    added |= {"edges-2-source": f"trigger:{added['triggers-1-id']}", "jobs-1-name": "second one"}
    added |= {"edges-2-target": added["jobs-0-id"], "edges-2-condition": "always"}
    saved = await editor.post(edit, added)
    assert saved.status_code == 303, saved.text[-3000:]
    assert saved.headers["location"] == f"{edit}?saved=2"

    after = (await editor.api.get(f"/api/workflows/{workflow_id}")).json()
    assert after["version"] == 2
    assert after["jobs"][0]["credential_id"] == editor.seeded.credential_id
    assert after["jobs"][1]["name"] == "second one"
    cron = after["triggers"][1]
    assert (cron["cron_expression"], cron["timezone"]) == ("30 6 * * 1-5", "Europe/Paris")
    assert (
        after["retry"] == before["retry"]
        and after["triggers"][0]["id"] == before["triggers"][0]["id"]
    )


async def test_removing_a_job_removes_its_edges(editor: Editor) -> None:
    edit = f"/ui/workflows/{editor.seeded.workflow_id}/edit"
    fields = form_of((await editor.http.get(edit)).text)
    assert "edges-1-id" in fields  # first -> second
    removed = form_of((await editor.post(edit, fields, "remove-job:1")).text)
    assert "jobs-1-id" not in removed and "edges-1-id" not in removed
    assert (await editor.post(edit, removed)).status_code == 303
    after = (await editor.api.get(f"/api/workflows/{editor.seeded.workflow_id}")).json()
    assert [j["name"] for j in after["jobs"]] == ["first"] and len(after["edges"]) == 1


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "Give the workflow a name."),
        ({"jobs-0-name": ""}, "jobs-0-name", "Give the job a name."),
        ({"jobs-1-name": "first"}, "jobs-1-name", "Another job has this name."),
        ({"jobs-0-adaptor": ""}, "jobs-0-adaptor", "Say which adaptor runs it"),
        ({"jobs-0-adaptor": "pandas@@1"}, "jobs-0-adaptor", "pandas@@1"),
        ({"jobs-0-requirements": "not a requirement!"}, "jobs-0-requirements", "requirement"),
        ({"jobs-0-language": "cobol"}, "jobs-0-language", "Choose Python or JavaScript."),
        ({"jobs-1-body": "def broken(:\n    pass\n"}, "jobs-1-body", "line 1"),
        ({"edges-0-condition": "expression"}, "edges-0-expression", "Write the expression."),
        (
            {"edges-1-condition": "expression", "edges-1-expression": "state['x'] >"},
            "edges-1-expression",
            "does not parse as Python",
        ),
        ({"edges-1-target": ""}, "edges-1-target", "Choose the job it leads to."),
        ({"jobs-0-credential_id": "nope"}, "", "nope"),
    ],
)
async def test_bad_input_is_a_4xx_shown_next_to_its_field_and_nothing_is_saved(
    editor: Editor, change: dict[str, str], field: str, message: str
) -> None:
    edit = f"/ui/workflows/{editor.seeded.workflow_id}/edit"
    fields = form_of((await editor.http.get(edit)).text) | change
    refused = await editor.post(edit, fields)
    assert 400 <= refused.status_code < 500, refused.text[-2000:]
    shown = error_of(refused.text, field) if field else refused.text
    assert message in shown, (field, refused.text[-3000:])
    # the form comes back as posted (a menu can only show the choices it has)
    menus = {"jobs-0-language", "jobs-0-credential_id"}
    back = form_of(refused.text)
    assert {k: v for k, v in back.items() if k not in menus} == {
        k: v for k, v in fields.items() if k not in menus
    }
    after = (await editor.api.get(f"/api/workflows/{editor.seeded.workflow_id}")).json()
    assert after["version"] == 1


async def test_a_body_that_does_not_parse_has_its_line_marked_for_the_editor(
    editor: Editor,
) -> None:
    edit = f"/ui/workflows/{editor.seeded.workflow_id}/edit"
    fields = form_of((await editor.http.get(edit)).text)
    fields["jobs-1-body"] = "@fn\ndef step(state):\n    return state +\n"
    refused = await editor.post(edit, fields)
    assert refused.status_code == 422
    assert re.search(r'id="jobs-1-body"[^>]*data-error-line="3"', refused.text)
    assert "SyntaxError at line 3" in error_of(refused.text, "jobs-1-body")
    assert 'aria-invalid="true" aria-describedby="jobs-1-body-error"' in refused.text


async def test_a_bad_schedule_names_its_trigger_field(editor: Editor) -> None:
    edit = f"/ui/workflows/{editor.seeded.workflow_id}/edit"
    fields = form_of(
        (
            await editor.post(edit, form_of((await editor.http.get(edit)).text), "add-trigger:cron")
        ).text
    )
    for change, field in (
        ({"triggers-1-cron_expression": "61 * * * *"}, "triggers-1-cron_expression"),
        ({"triggers-1-timezone": "Mars/Olympus"}, "triggers-1-timezone"),
    ):
        refused = await editor.post(edit, fields | change)
        assert refused.status_code == 422
        assert error_of(refused.text, field), refused.text[-2000:]


async def test_a_stale_save_is_refused_with_the_form_kept_then_can_be_saved_over(
    editor: Editor,
) -> None:
    workflow_id = editor.seeded.workflow_id
    edit = f"/ui/workflows/{workflow_id}/edit"
    mine = form_of((await editor.http.get(edit)).text) | {
        "jobs-0-body": "fn(lambda s: s)  # mine\n"
    }
    read = (await editor.api.get(f"/api/workflows/{workflow_id}")).json()
    kept = ("id", "name", "concurrency", "retry", "jobs", "triggers", "edges")
    theirs = {key: read[key] for key in kept} | {"name": "renamed by someone else"}
    put = await editor.api.put(f"/api/workflows/{workflow_id}?expected_version=1", json=theirs)
    assert put.status_code == 200

    refused = await editor.post(edit, mine)
    assert refused.status_code == 409
    assert "someone else saved this workflow meanwhile" in refused.text
    assert "It is now at version 2; your changes were based on version 1." in refused.text
    assert form_of(refused.text) == mine
    again = await editor.post(edit, mine)
    assert again.status_code == 409  # still based on version 1

    over = await editor.post(edit, mine, "overwrite:2")
    assert over.status_code == 303 and over.headers["location"] == f"{edit}?saved=3"
    after = (await editor.api.get(f"/api/workflows/{workflow_id}")).json()
    assert after["jobs"][0]["body"] == "fn(lambda s: s)  # mine\n" and after["name"] == "chain"


async def test_a_long_job_is_saved_as_the_api_would_save_it(editor: Editor) -> None:
    """The editor's forms take the API's body limit (1 MiB), not the dashboard's 64 KiB."""
    edit = f"/ui/workflows/{editor.seeded.workflow_id}/edit"
    fields = form_of((await editor.http.get(edit)).text)
    long_body = "fn(lambda s: s)\n" + "# a long comment line to make a long job body\n" * 4000
    saved = await editor.post(edit, fields | {"jobs-0-body": long_body})
    assert saved.status_code == 303
    after = (await editor.api.get(f"/api/workflows/{editor.seeded.workflow_id}")).json()
    assert after["jobs"][0]["body"] == long_body
    assert len(long_body) > 150_000


async def test_unknown_projects_and_workflows_are_404_pages(editor: Editor) -> None:
    assert (await editor.http.get("/ui/projects/nope/workflows/new")).status_code == 404
    assert (await editor.http.get("/ui/workflows/nope/edit")).status_code == 404
    posted = await editor.post("/ui/workflows/nope/edit", {"name": "x"})
    assert posted.status_code == 404


async def test_the_workflows_list_links_to_new_and_edit(editor: Editor) -> None:
    page = (await editor.http.get("/ui")).text
    assert f'href="/ui/projects/{editor.seeded.project_id}/workflows/new">New workflow<' in page
    assert f'href="/ui/workflows/{editor.seeded.workflow_id}/edit"' in page


async def test_without_its_bundle_the_editor_is_a_textarea_and_says_why(editor: Editor) -> None:
    page = (await editor.http.get(f"/ui/workflows/{editor.seeded.workflow_id}/edit")).text
    # test coordinators never run npm (fulmen_testing.coordinator.settings)
    assert "The code editor is unavailable: this coordinator does not build it" in page
    assert "/ui/editor/" not in page and 'data-code="python"' in page
    missing = await editor.http.get(f"/ui/editor/{digest()}/editor.js")
    assert missing.status_code == 404


async def test_once_built_the_bundle_is_served_by_the_coordinator_for_good(
    editor: Editor,
) -> None:
    built = editor.cache / digest() / "editor.js"
    built.parent.mkdir(parents=True)
    built.write_text("/* the bundle */")
    page = (await editor.http.get(f"/ui/workflows/{editor.seeded.workflow_id}/edit")).text
    url = f"/ui/editor/{digest()}/editor.js"
    assert f'<script src="{url}" defer></script>' in page and "code editor is" not in page
    served = await editor.http.get(url)
    assert served.status_code == 200 and served.text == "/* the bundle */"
    assert served.headers["content-type"].startswith("text/javascript")
    assert "immutable" in served.headers["cache-control"]
    assert "script-src 'self'" in served.headers["content-security-policy"]
    assert (await editor.http.get("/ui/editor/0123456789abcdef/editor.js")).status_code == 404


async def test_a_host_without_npm_says_the_editor_is_unavailable(tmp_path: Path) -> None:
    bundle = EditorBundle(tmp_path, npm="no-such-npm-here")
    await bundle.build()
    assert not bundle.ready
    assert bundle.status() == (
        "The code editor is unavailable: Node.js and npm are not installed on the "
        "coordinator's host."
    )
