"""The collections API jobs call (issue 19), on a real coordinator over loopback, on SQLite and
PostgreSQL: Lightning's paths, shapes and statuses; a run's token for its own project's
collections only; API tokens by role; patterns, cursors, time ranges; a bulk upsert of
10,000 items in one request; limits answered with clear errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from fulmen.coordinator.run_tokens import RunTokens
from fulmen.store import Actor, AuditFilter, EnqueueRequest, SQLStore, open_store
from fulmen_testing.coordinator import (
    CREDENTIAL_KEY,
    seed,
    serve,
)
from fulmen_testing.teams import Team, team

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    http: httpx2.AsyncClient
    team: Team
    #: A run's token in the team's project (which has the collection ``mine``); ``theirs``
    #: is another project's collection.
    run_token: str
    tokens: RunTokens

    def run(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.run_token}"}

    def mint(self, run_id: str, *, now: float | None = None, timeout: float = 300.0) -> str:
        """A run token as the coordinator gives a worker one."""
        at = time.time() if now is None else now
        return self.tokens.mint(run_id, now=at, run_timeout=timeout, grace=10)


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[World]:
    async with (
        await open_store(store_url, credential_key=CREDENTIAL_KEY) as store,
        serve(store, collection_max_items=20_000, collection_max_value_bytes=1000) as served,
        httpx2.AsyncClient(base_url=served.base_url, timeout=120) as http,
    ):
        people = await team(store)
        other = await seed(store)
        await store.create_collection(people.project_id, "mine")
        await store.create_collection(other.project_id, "theirs")
        made = await store.enqueue(EnqueueRequest(workflow_id=people.seeded.workflow_id))
        world = World(store, http, people, "", served.coordinator.run_tokens)
        world.run_token = world.mint(made.run_id)
        yield world


async def test_one_item_put_get_delete_as_lightning_answers(world: World) -> None:
    http, run = world.http, world.run()
    put = await http.put("/collections/mine/patient-1", json={"value": '{"a":1}'}, headers=run)
    assert (put.status_code, put.json()) == (200, {"upserted": 1, "error": None})
    got = await http.get("/collections/mine/patient-1", headers=run)
    assert got.status_code == 200
    item = got.json()
    assert (item["key"], item["value"]) == ("patient-1", '{"a":1}')
    assert item["created"].endswith("Z") and item["created"] == item["updated"]
    missing = await http.get("/collections/mine/nobody", headers=run)
    assert (missing.status_code, missing.content) == (204, b"")
    gone = await http.delete("/collections/mine/patient-1", headers=run)
    assert gone.json() == {"key": "patient-1", "deleted": 1, "error": None}
    again = await http.delete("/collections/mine/patient-1", headers=run)
    assert again.json() == {"key": "patient-1", "deleted": 0, "error": "Item Not Found"}
    not_text = await http.put("/collections/mine/k", json={"value": {"a": 1}}, headers=run)
    assert not_text.status_code == 200
    assert not_text.json()["upserted"] == 0 and not_text.json()["error"] == "Format error"
    no_value = await http.put("/collections/mine/k", json={"v": "1"}, headers=run)
    assert no_value.status_code == 400 and no_value.json()["error"] == "Bad Request"
    not_json = await http.put("/collections/mine/k", content=b"{", headers=run)
    assert not_json.status_code == 400


async def test_keys_with_slashes_and_escapes(world: World) -> None:
    http, run = world.http, world.run()
    for key in ("a/b/c", "with space", "ünï", "50%_off", "q?x=1"):
        path = f"/collections/mine/{quote(key, safe='')}"
        assert (await http.put(path, json={"value": key}, headers=run)).json()["upserted"] == 1
        assert (await http.get(path, headers=run)).json()["value"] == key
    listed = (await http.get("/collections/mine", params={"key": "50%_*"}, headers=run)).json()
    assert [i["key"] for i in listed["items"]] == ["50%_off"]


async def test_bulk_10000_in_one_request_then_pages_by_cursor(world: World) -> None:
    http, run = world.http, world.run()
    items = [{"key": f"patient-{i:05}", "value": f'{{"n":{i}}}'} for i in range(10_000)]
    items.append({"key": "other-1", "value": "x"})
    put = await http.post("/collections/mine", json={"items": items}, headers=run)
    assert (put.status_code, put.json()) == (200, {"upserted": 10_001, "error": None})
    assert (await world.store.get_collection("mine")).item_count == 10_001

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"key": "patient-*", "limit": "3000", **({"cursor": cursor} if cursor else {})}
        page = await http.get("/collections/mine", params=params, headers=run)
        assert page.status_code == 200 and page.headers["content-type"] == "application/json"
        body = page.json()
        seen += [item["key"] for item in body["items"]]
        pages += 1
        if (cursor := body["cursor"]) is None:
            break
    assert pages == 4 and seen == [item["key"] for item in items[:10_000]]

    everything = (await http.get("/collections/mine", headers=run)).json()
    assert len(everything["items"]) == 1000 and everything["cursor"] is not None
    exact = (await http.get("/collections/mine", params={"limit": 10_001}, headers=run)).json()
    assert len(exact["items"]) == 10_001 and exact["cursor"] is None
    first = exact["items"][0]
    assert set(first) == {"key", "value", "created", "updated"}


async def test_time_ranges_by_insert_and_update(world: World) -> None:
    http, run = world.http, world.run()
    await http.post("/collections/mine", json={"items": [{"key": "a", "value": "1"}]}, headers=run)
    a = (await http.get("/collections/mine/a", headers=run)).json()
    await http.put("/collections/mine/b", json={"value": "2"}, headers=run)
    b = (await http.get("/collections/mine/b", headers=run)).json()
    await http.put("/collections/mine/a", json={"value": "3"}, headers=run)
    a2 = (await http.get("/collections/mine/a", headers=run)).json()
    assert a2["created"] == a["created"] and a2["updated"] > a["updated"]

    async def keys_where(**query: str) -> list[str]:
        answer = await http.get("/collections/mine", params=query, headers=run)
        assert answer.status_code == 200, answer.text
        return [item["key"] for item in answer.json()["items"]]

    assert await keys_where(created_after=b["created"]) == ["b"]
    assert await keys_where(created_before=b["created"]) == ["a"]
    assert await keys_where(updated_after=a2["updated"]) == ["a"]
    assert await keys_where(updated_before=a2["updated"]) == ["b"]


async def test_delete_by_pattern_and_all(world: World) -> None:
    http, run = world.http, world.run()
    items = [{"key": k, "value": "v"} for k in ("patient-1", "patient-2", "patientX", "visit-1")]
    await http.post("/collections/mine", json={"items": items}, headers=run)
    some = await http.delete("/collections/mine", params={"key": "patient-*"}, headers=run)
    assert some.json() == {"key": "patient-*", "deleted": 2, "error": None}
    rest = await http.delete("/collections/mine", headers=run)
    assert rest.json() == {"key": None, "deleted": 2, "error": None}
    assert (await world.store.get_collection("mine")).item_count == 0


async def test_a_run_token_is_refused_for_another_projects_collection(world: World) -> None:
    http, run = world.http, world.run()
    for method, path, body in (
        ("GET", "/collections/theirs", None),
        ("GET", "/collections/theirs/k", None),
        ("PUT", "/collections/theirs/k", {"value": "stolen"}),
        ("POST", "/collections/theirs", {"items": [{"key": "k", "value": "v"}]}),
        ("DELETE", "/collections/theirs/k", None),
        ("DELETE", "/collections/theirs", None),
    ):
        theirs = await http.request(method, path, json=body, headers=run)
        unknown = await http.request(
            method, path.replace("theirs", "nothing"), json=body, headers=run
        )
        assert theirs.status_code == unknown.status_code == 404, (method, path)
        assert theirs.json()["code"] == unknown.json()["code"] == "not_found"
        assert theirs.json()["message"] == unknown.json()["message"].replace("nothing", "theirs")
    theirs_id = (await world.store.get_collection("theirs")).id
    assert await world.store.get_collection_item(theirs_id, "k") is None


async def test_tokens_that_are_not_valid_are_401(world: World) -> None:
    http = world.http
    made = await world.store.enqueue(EnqueueRequest(workflow_id=world.team.seeded.workflow_id))
    expired = world.mint(made.run_id, now=time.time() - 1000, timeout=10)
    forged = world.run_token[:-4] + ("AAAA" if not world.run_token.endswith("AAAA") else "BBBB")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Bearer fmn_000000000000_wrong"},
        {"Authorization": f"Bearer {world.mint('no-such-run')}"},
    ):
        answer = await http.get("/collections/mine", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["error"] == "Unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_api_tokens_read_as_viewers_and_write_as_editors(world: World) -> None:
    http, t = world.http, world.team
    for who in ("owner", "admin", "editor", "viewer", "instance_admin"):
        read = await http.get("/collections/mine", headers=t.bearer(who))
        assert read.status_code == 200, who
    for who in ("owner", "admin", "editor", "instance_admin"):
        put = await http.put(f"/collections/mine/{who}", json={"value": "1"}, headers=t.bearer(who))
        assert put.json() == {"upserted": 1, "error": None}, who
    refused = await http.put("/collections/mine/v", json={"value": "1"}, headers=t.bearer("viewer"))
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert "takes the editor role" in refused.json()["message"]
    for who in ("outsider", "service"):
        hidden = await http.get("/collections/mine", headers=t.bearer(who))
        assert hidden.status_code == 404 and hidden.json()["code"] == "not_a_member", who
    records = await world.store.list_audit(AuditFilter(project_id=t.project_id))
    assert any(r.action == "access.refused" for r in records.items)


async def test_bulk_changes_by_people_are_recorded_and_by_runs_not(world: World) -> None:
    http, t = world.http, world.team
    body = {"items": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}
    await http.post("/collections/mine", json=body, headers=t.bearer("editor"))
    await http.post("/collections/mine", json=body, headers=world.run())
    await http.delete("/collections/mine", params={"key": "a*"}, headers=t.bearer("editor"))
    records = await world.store.list_audit(AuditFilter(project_id=t.project_id))
    mine = [r for r in records.items if r.target.type == "collection"]
    assert sorted((r.action, dict(r.detail or {}).get("count")) for r in mine) == [
        ("collection.items_deleted", 1),
        ("collection.items_put", 2),
    ]
    assert all(r.actor.id == t.users["editor"].id for r in mine)
    assert isinstance(mine[0].actor, Actor)


async def test_bad_queries_are_400_as_lightning_answers(world: World) -> None:
    http, run = world.http, world.run()
    for query in (
        {"nope": "1"},
        {"limit": "ten"},
        {"limit": "0"},
        {"cursor": "not-a-cursor"},
        {"created_after": "yesterday"},
    ):
        answer = await http.get("/collections/mine", params=query, headers=run)
        assert answer.status_code == 400, query
        assert answer.json()["error"] == "Bad Request" and answer.json()["message"], query


async def test_limits_answer_clear_errors_and_keep_what_was_there(world: World) -> None:
    http, run = world.http, world.run()
    big = await http.put("/collections/mine/k", json={"value": "x" * 1001}, headers=run)
    assert big.status_code == 422
    assert (big.json()["code"], big.json()["field"]) == ("item_too_large", "items[0].value")
    assert "1000 bytes" in big.json()["message"]
    many = [{"key": f"k{i}", "value": "v"} for i in range(20_001)]
    full = await http.post("/collections/mine", json={"items": many}, headers=run)
    assert full.status_code == 422 and full.json()["code"] == "collection_full"
    assert "20000 items" in full.json()["message"]
    twice = [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]
    dup = await http.post("/collections/mine", json={"items": twice}, headers=run)
    assert (dup.status_code, dup.json()["code"]) == (422, "duplicate_key")
    bad: list[Any] = [{"key": "a"}, "x", {"key": 1, "value": "v"}]
    for item in bad:
        answer = await http.post("/collections/mine", json={"items": [item]}, headers=run)
        assert (answer.status_code, answer.json()["code"]) == (422, "bad_item"), item
    long_key = await http.put(f"/collections/mine/{'k' * 256}", json={"value": "v"}, headers=run)
    assert (long_key.status_code, long_key.json()["code"]) == (422, "bad_key")
    assert (await world.store.get_collection("mine")).item_count == 0


async def test_the_management_api_makes_lists_and_deletes_collections(world: World) -> None:
    http, t = world.http, world.team
    editor = t.bearer("editor")
    base = f"/api/projects/{t.project_id}/collections"
    made = await http.post(base, json={"name": "visits"}, headers=editor)
    assert made.status_code == 201, made.text
    assert (made.json()["name"], made.json()["item_count"]) == ("visits", 0)
    taken = await http.post(base, json={"name": "theirs"}, headers=editor)
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "collection_exists")
    bad = await http.post(base, json={"name": "Not Safe"}, headers=editor)
    assert bad.status_code == 422
    items = {"items": [{"key": f"k{i}", "value": "v"} for i in range(3)]}
    await http.post("/collections/visits", json=items, headers=editor)
    listed = (await http.get(base, headers=t.bearer("viewer"))).json()
    assert [(c["name"], c["item_count"]) for c in listed["items"]] == [("mine", 0), ("visits", 3)]
    one = await http.get("/api/collections/visits", headers=t.bearer("viewer"))
    assert one.json()["item_count"] == 3
    hidden = await http.get("/api/collections/theirs", headers=editor)
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "not_a_member")
    assert (await http.delete("/api/collections/visits", headers=editor)).status_code == 204
    assert (await http.get("/collections/visits", headers=editor)).status_code == 404
    records = await world.store.list_audit(
        AuditFilter(project_id=t.project_id, action="collection")
    )
    assert [r.action for r in records.items][:3] == [
        "collection.deleted",
        "collection.items_put",
        "collection.created",
    ]
    assert records.items[0].before == {"name": "visits", "item_count": 3}
