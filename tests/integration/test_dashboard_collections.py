"""The dashboard's collections pages (issue 19), on a real coordinator over loopback: each
project's collections with their counts, one collection's items searched by key pattern and
paged with a cursor, an item's whole value, and the forms an editor has and a viewer has
not."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from fulmen.store import CollectionLimits, SQLStore
from fulmen_testing.coordinator import serve, sqlite_store
from fulmen_testing.teams import COOKIE, Team, Who, sign_in, team

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Board:
    store: SQLStore
    base_url: str
    team: Team

    async def client(self, who: Who) -> httpx2.AsyncClient:
        cookie = await sign_in(self.store, user_id=self.team.users[who].id)
        return httpx2.AsyncClient(
            base_url=self.base_url, cookies={COOKIE: cookie}, headers={"Origin": self.base_url}
        )


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[Board]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        people = await team(store)
        made = await store.create_collection(people.project_id, "patients")
        items = [(f"patient-{i:03}", f'{{"n": {i}}}') for i in range(60)]
        items += [("visit-1", "<b>not html</b>"), ("long", "x" * 500)]
        await store.put_collection_items(made.id, items, CollectionLimits())
        await store.create_collection(people.other_project_id, "hidden")
        yield Board(store, served.base_url, people)


def keys_on(html: str) -> list[str]:
    return re.findall(r'<tr data-key="([^"]+)"', html)


async def test_an_editor_browses_searches_pages_and_deletes(board: Board) -> None:
    async with await board.client("editor") as http:
        listing = await http.get("/ui/collections")
        assert listing.status_code == 200
        assert 'data-name="patients"' in listing.text and 'data-name="hidden"' not in listing.text
        assert '<td class="count">62</td>' in listing.text

        first = await http.get("/ui/collections/patients", params={"key": "patient-*"})
        assert keys_on(first.text) == [f"patient-{i:03}" for i in range(50)]
        following = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert following is not None
        second = await http.get(following.group(1).replace("&amp;", "&"))
        assert keys_on(second.text) == [f"patient-{i:03}" for i in range(50, 60)]
        assert 'rel="next"' not in second.text

        everything = await http.get("/ui/collections/patients", params={"key": "*-1"})
        assert keys_on(everything.text) == ["visit-1"]
        assert "&lt;b&gt;not html&lt;/b&gt;" in everything.text
        long_row = await http.get("/ui/collections/patients", params={"key": "long"})
        assert "x" * 160 + "…" in long_row.text and "x" * 161 not in long_row.text

        one = await http.get("/ui/collections/patients/item", params={"key": "patient-007"})
        assert one.status_code == 200 and "{\n  &#34;n&#34;: 7\n}" in one.text
        none = await http.get("/ui/collections/patients/item", params={"key": "nobody"})
        assert none.status_code == 404

        deleted = await http.post("/ui/collections/patients/items/delete", data={"key": "visit-1"})
        assert deleted.status_code == 303
        collection = await board.store.get_collection("patients")
        assert await board.store.get_collection_item(collection.id, "visit-1") is None

        made = await http.post(f"/ui/collections/{board.team.project_id}", data={"name": "new-one"})
        assert made.status_code == 303 and made.headers["location"].endswith(
            "/new-one?done=created"
        )
        refused = await http.post(f"/ui/collections/{board.team.project_id}", data={"name": "Bad"})
        assert refused.status_code == 422 and 'data-code="invalid_form"' in refused.text
        taken = await http.post(f"/ui/collections/{board.team.project_id}", data={"name": "hidden"})
        assert taken.status_code == 409 and 'data-code="collection_exists"' in taken.text

        gone = await http.post("/ui/collections/patients/delete")
        assert gone.status_code == 303
        assert [
            c.name for c in (await board.store.list_collections(board.team.project_id)).items
        ] == ["new-one"]


async def test_a_viewer_browses_without_forms_and_an_outsider_sees_nothing(board: Board) -> None:
    async with await board.client("viewer") as http:
        listing = await http.get("/ui/collections")
        assert 'data-name="patients"' in listing.text
        assert "New collection" not in listing.text and "/delete" not in listing.text
        items = await http.get("/ui/collections/patients")
        assert len(keys_on(items.text)) == 50 and "/items/delete" not in items.text
    async with await board.client("outsider") as http:
        assert 'data-name="patients"' not in (await http.get("/ui/collections")).text
        hidden = await http.get("/ui/collections/patients")
        assert hidden.status_code == 404 and 'data-code="not_a_member"' in hidden.text
