"""The audit trail's pages over HTTP, on a real coordinator: a workflow saved through the
editor's form shows on its project's trail with its diff (removed and added lines marked,
every line escaped), filters that are links, exports beside them, the instance's trail with
the sign-ins; nothing without signing in."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx2
import pytest

from fulmen.store import SQLStore
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store
from fulmen_testing.forms import form_of

pytestmark = pytest.mark.anyio

EDITED = (
    "@fn\ndef first(state):\n    state['note'] = '<script>alert(1)</script>'\n    return state\n"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Board:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    token: str

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            b = Board(store, seeded, http, await api_token(store))
            signed = await http.post("/ui/login", data={"token": b.token}, headers=b.origin)
            assert signed.status_code == 303
            yield b


def spans(html: str, kind: str) -> list[str]:
    return [unescape(m) for m in re.findall(rf'<span class="diff-{kind}">(.*?)</span>', html)]


async def test_a_workflow_saved_in_the_editor_shows_its_diff(board: Board) -> None:
    edit = f"/ui/workflows/{board.seeded.workflow_id}/edit"
    fields = form_of((await board.http.get(edit)).text) | {"jobs-0-body": EDITED}
    saved = await board.http.post(edit, data={**fields, "do": "save"}, headers=board.origin)
    assert saved.status_code == 303, saved.text[-2000:]

    trail = f"/ui/projects/{board.seeded.project_id}/audit"
    page = await board.http.get(trail)
    assert page.status_code == 200
    html = page.text
    assert 'data-action="workflow.updated"' in html
    assert spans(html, "removed") == ["-    body: 'fn(lambda s: s)'", "-version: 1"]
    assert spans(html, "added") == [
        "+    body: |",
        "+      @fn",
        "+      def first(state):",
        "+          state['note'] = '<script>alert(1)</script>'",
        "+          return state",
        "+version: 2",
    ]
    assert "<script>alert(1)" not in html  # escaped, as every value is
    assert "by <b>tests</b>" in html and "from 127.0.0.1" in html
    assert f'href="/ui/projects/{board.seeded.project_id}/audit.csv"' in html

    # a filter is a link, and the export beside it holds what it matches
    only = await board.http.get(trail, params={"action": "credential"})
    assert 'data-action="workflow.updated"' not in only.text
    assert "No record matches." in only.text
    assert f"{trail}.jsonl?action=credential" in only.text
    exported = await board.http.get(f"{trail}.jsonl", params={"action": "workflow"})
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    (line,) = exported.text.splitlines()
    assert json.loads(line)["after"]["jobs"][0]["body"] == EDITED
    csv = await board.http.get(f"{trail}.csv")
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.text.startswith("id,at,actor_kind,actor_id,actor_name,address,action,")
    bad = await board.http.get(trail, params={"since": "last tuesday"})
    assert bad.status_code == 400 and "is not a time" in unescape(bad.text)
    assert (await board.http.get(f"{trail}.csv", params={"until": "soon"})).status_code == 400
    assert (await board.http.get(f"{trail}.xml")).status_code == 404
    assert (await board.http.get("/ui/projects/nope/audit")).status_code == 404


async def test_the_instance_trail_holds_the_sign_ins_and_filters_by_project(board: Board) -> None:
    page = await board.http.get("/ui/audit")
    assert page.status_code == 200
    assert 'data-action="sign_in.succeeded"' in page.text
    assert '<option value="' + board.seeded.project_id + '"' in page.text
    await board.http.post(
        f"/ui/settings/projects/{board.seeded.project_id}",
        data={"name": "renamed", "history_retention_period": "30"},
        headers=board.origin,
    )
    mine = await board.http.get("/ui/audit", params={"project_id": board.seeded.project_id})
    assert 'data-action="project.updated"' in mine.text
    assert 'data-action="sign_in.succeeded"' not in mine.text
    assert "+history_retention_period: 30" in spans(mine.text, "added")
    assert "project_id=" + board.seeded.project_id in mine.text  # the export links keep it


async def test_the_trail_needs_a_sign_in(board: Board) -> None:
    async with httpx2.AsyncClient(base_url=str(board.http.base_url)) as stranger:
        for path in ("/ui/audit", f"/ui/projects/{board.seeded.project_id}/audit", "/ui/audit.csv"):
            answer = await stranger.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/ui/login")
