"""Keychains in the dashboard (issue 19), over HTTP on a real coordinator: made and changed
through their forms (entries by credential name), refusals naming their field, chosen on a
job in the workflow form, deleted only when no job names them, and each run's page saying
what its keychain chose."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from uuid import uuid4

import httpx2
import pytest

from fulmen.plan import Options
from fulmen.store import (
    AuditFilter,
    DataclipType,
    EnqueueRequest,
    NewCredential,
    NewDataclip,
    SQLStore,
)
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store
from fulmen_testing.forms import form_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Board:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    #: The id of a second credential, named "north".
    north: str

    async def post(self, path: str, data: dict[str, str]) -> httpx2.Response:
        origin = {"Origin": str(self.http.base_url).rstrip("/")}
        return await self.http.post(path, data=data, headers=origin)


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store)
        north = await store.put_credential(
            NewCredential(str(uuid4()), seeded.project_id, "north", {"token": "north-token-12"})
        )
        token = await api_token(store)
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            origin = {"Origin": served.base_url}
            signed = await http.post("/ui/login", data={"token": token}, headers=origin)
            assert signed.status_code == 303
            yield Board(store, seeded, http, north.id)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="[^"]*-{field}-error"[^>]*>([^<]*)</p>', html)
    return unescape(found.group(1)) if found else ""


async def make(board: Board) -> str:
    s = board.seeded
    made = await board.post(
        f"/ui/keychains/{s.project_id}",
        {
            "name": "sites",
            "path": "$.data.site_id",
            "entries": f"north = north\r\nsouth = {s.credential_id}\r\n",
            "default_credential_id": s.credential_id,
        },
    )
    assert made.status_code == 303, made.text[-2000:]
    [keychain] = await board.store.list_keychains(s.project_id)
    assert made.headers["location"].endswith(f"#keychain-{keychain.id}")
    return keychain.id


async def test_a_keychain_is_made_listed_and_changed(board: Board) -> None:
    s = board.seeded
    keychain_id = await make(board)
    keychain = await board.store.get_keychain(keychain_id)
    assert keychain.entries == {"north": board.north, "south": s.credential_id}
    assert keychain.default_credential_id == s.credential_id
    page = await board.http.get("/ui/keychains?done=created&id=" + keychain_id)
    card = page.text.split(f'id="keychain-{keychain_id}"')[1].split("</article>")[0]
    assert "Keychain sites created." in text_of(page.text)
    assert "$.data.site_id" in card and "north" in card and "api" in card
    assert "north-token-12" not in page.text and "s3cr3t-pw" not in page.text
    credentials = (await board.http.get("/ui/credentials")).text
    card = credentials.split(f'id="credential-{board.north}"')[1].split("</article>")[0]
    assert "keychain sites" in text_of(card) and "No job uses it" not in card

    changed = await board.post(
        f"/ui/keychains/{s.project_id}/{keychain_id}",
        {"name": "sites", "path": "$.data.site", "entries": "west = north"},
    )
    assert changed.status_code == 303, changed.text[-2000:]
    keychain = await board.store.get_keychain(keychain_id)
    assert (keychain.path, keychain.entries) == ("$.data.site", {"west": board.north})
    assert keychain.default_credential_id is None
    page = await board.http.get("/ui/keychains")
    assert "none: the run fails" in text_of(page.text)
    records = await board.store.list_audit(AuditFilter(project_id=s.project_id))
    actions = [r.action for r in records.items if r.target.type == "keychain"]
    assert sorted(actions) == ["keychain.created", "keychain.updated"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"path": "data.site_id"}, "path", "the path must be a JSONPath starting with $"),
        ({"path": "$.data[?(@.x)]"}, "path", "cannot read the path"),
        ({"entries": "north"}, "entries", "line 1: write value = credential"),
        ({"entries": "a = nobody"}, "entries", "line 1: 'nobody': no such credential"),
        ({"name": " "}, "name", "String should have at least 1 character"),
    ],
)
async def test_bad_forms_are_422_naming_the_field(
    board: Board, fields: dict[str, str], field: str, message: str
) -> None:
    form = {"name": "sites", "path": "$.data.site_id", "entries": "", **fields}
    answer = await board.post(f"/ui/keychains/{board.seeded.project_id}", form)
    assert answer.status_code == 422, answer.text[-2000:]
    assert message in field_error(answer.text, field), text_of(answer.text)[-1500:]
    assert await board.store.list_keychains(board.seeded.project_id) == []


async def test_a_job_chooses_a_keychain_and_its_runs_say_what_was_chosen(board: Board) -> None:
    s = board.seeded
    keychain_id = await make(board)
    edit = f"/ui/workflows/{s.workflow_id}/edit"
    page = await board.http.get(edit)
    assert f'<option value="keychain:{keychain_id}">sites ($.data.site_id)</option>' in page.text
    fields = form_of(page.text) | {"jobs-0-credential_id": f"keychain:{keychain_id}"}
    saved = await board.http.post(
        edit, data={**fields, "do": "save"}, headers={"Origin": str(board.http.base_url)}
    )
    assert saved.status_code == 303, saved.text[-3000:]
    first = (await board.store.get_workflow(s.workflow_id)).workflow.jobs[0]
    assert (first.credential_id, first.keychain_id) == (None, keychain_id)
    again = form_of((await board.http.get(edit)).text)
    assert again["jobs-0-credential_id"] == f"keychain:{keychain_id}"

    made = await board.store.enqueue(
        EnqueueRequest(
            s.workflow_id,
            input=NewDataclip(DataclipType.HTTP_REQUEST, {"site_id": "north"}),
            trigger_id=s.webhook_id,
            options=Options(),
        )
    )
    page = await board.http.get(f"/ui/runs/{made.run_id}")
    shown = text_of(page.text.split(f'data-keychain="{keychain_id}"')[1].split("</div>")[0])
    assert "Keychain sites" in shown and "north ( $.data.site_id = north )" in shown

    # The keychain, named by a job, cannot go; the page says why.
    refused = await board.post(f"/ui/keychains/{s.project_id}/{keychain_id}/delete", {})
    assert refused.status_code == 409
    assert f"is used by job {s.job_ids[0]}" in text_of(refused.text)


async def test_an_unused_keychain_is_deleted(board: Board) -> None:
    keychain_id = await make(board)
    answer = await board.post(f"/ui/keychains/{board.seeded.project_id}/{keychain_id}/delete", {})
    assert answer.status_code == 303
    assert await board.store.list_keychains(board.seeded.project_id) == []
    missing = await board.post(f"/ui/keychains/{board.seeded.project_id}/nope/delete", {})
    assert missing.status_code == 404
