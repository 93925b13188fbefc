"""Collections in the store, on SQLite and PostgreSQL (issue 19): names unique across the
instance, upserts that keep an item's place, `*` patterns whose other characters stand for
themselves, keyset pages and streams, time ranges, and limits that refuse with nothing
written."""

from __future__ import annotations

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import CollectionLimits, ItemFilter, Project, SQLStore, collections
from fulmen_testing.clock import FakeClock
from fulmen_testing.spies import noting_results

pytestmark = pytest.mark.anyio

LIMITS = CollectionLimits()


@pytest.fixture
async def cid(store: SQLStore) -> str:
    await store.create_project(Project("p1", "P1"))
    return (await store.create_collection("p1", "patients")).id


async def keys(store: SQLStore, cid: str, **where: object) -> list[str]:
    items = await store.list_collection_items(cid, ItemFilter(**where), 1000)  # type: ignore[arg-type]
    return [item.key for item in items]


async def test_names_are_unique_across_projects_and_url_safe(store: SQLStore) -> None:
    await store.create_project(Project("p1", "P1"))
    await store.create_project(Project("p2", "P2"))
    made = await store.create_collection("p1", "patients-2024.v1_a")
    assert (made.project_id, made.item_count) == ("p1", 0)
    with pytest.raises(ConflictError) as taken:
        await store.create_collection("p2", "patients-2024.v1_a")
    assert taken.value.code == "collection_exists"
    for bad in ("Patients", "a b", "-a", "a--b", "", "x" * 101, "a/b", "é"):
        with pytest.raises(InputError) as refused:
            await store.create_collection("p1", bad)
        assert refused.value.code == "bad_collection_name"
    assert (await store.get_collection("patients-2024.v1_a")).id == made.id
    with pytest.raises(NotFoundError):
        await store.get_collection("nope")
    page = await store.list_collections("p1")
    assert [c.name for c in page.items] == ["patients-2024.v1_a"]


async def test_upsert_keeps_order_and_counts(store: SQLStore, cid: str, clock: FakeClock) -> None:
    assert await store.put_collection_items(cid, [("b", "1"), ("a", "2")], LIMITS) == 2
    first = await store.get_collection_item(cid, "b")
    assert first is not None and first.value == "1"
    clock.advance(5)
    await store.put_collection_items(cid, [("b", "3"), ("c", "4")], LIMITS)
    assert await keys(store, cid) == ["b", "a", "c"]
    again = await store.get_collection_item(cid, "b")
    assert again is not None and again.value == "3"
    assert again.inserted_at == first.inserted_at < again.updated_at
    assert (await store.get_collection("patients")).item_count == 3
    assert await store.delete_collection_item(cid, "b") is True
    assert await store.delete_collection_item(cid, "b") is False
    assert (await store.get_collection("patients")).item_count == 2


async def test_patterns_escape_the_dialects_wildcards(store: SQLStore, cid: str) -> None:
    names = ["patient-1", "patient-2", "Patient-3", "patient_x", "patientAx", "p%q", "pXq", "a?b"]
    names += ["a[b", "ab", "back\\slash", "backXslash"]
    await store.put_collection_items(cid, [(k, "v") for k in names], LIMITS)
    assert await keys(store, cid, pattern="patient-*") == ["patient-1", "patient-2"]
    assert await keys(store, cid, pattern="patient_*") == ["patient_x"]
    assert await keys(store, cid, pattern="p%q") == ["p%q"]
    assert await keys(store, cid, pattern="a?b") == ["a?b"]
    assert await keys(store, cid, pattern="a[b") == ["a[b"]
    assert await keys(store, cid, pattern="back\\*") == ["back\\slash"]
    assert await keys(store, cid, pattern="*") == names
    assert await store.delete_collection_items(cid, "patient*") == 4
    assert await store.delete_collection_items(cid, None) == len(names) - 4
    assert (await store.get_collection("patients")).item_count == 0


async def test_pages_and_streams_by_id_with_time_ranges(
    store: SQLStore, cid: str, clock: FakeClock
) -> None:
    start = clock.now()
    await store.put_collection_items(cid, [(f"k{i:04}", str(i)) for i in range(1200)], LIMITS)
    clock.advance(60)
    middle = clock.now()
    await store.put_collection_items(cid, [("k0005", "new"), ("late", "x")], LIMITS)
    streamed = [item.key async for item in store.stream_collection_items(cid, ItemFilter(), page=7)]
    assert len(streamed) == 1201 and streamed[-1] == "late" and streamed[5] == "k0005"
    page = await store.list_collection_items(cid, ItemFilter(after_id=0), 3)
    after = await store.list_collection_items(cid, ItemFilter(after_id=page[-1].id), 3)
    assert [i.key for i in page + after] == ["k0000", "k0001", "k0002", "k0003", "k0004", "k0005"]
    assert await keys(store, cid, created_after=middle) == ["late"]
    assert await keys(store, cid, updated_after=middle) == ["k0005", "late"]
    assert len(await keys(store, cid, created_before=middle)) == 1000  # page of 1000 asked
    assert await keys(store, cid, created_before=start) == []


async def test_limits_refuse_and_write_nothing(store: SQLStore, cid: str) -> None:
    small = CollectionLimits(max_value_bytes=10, max_items=3)
    await store.put_collection_items(cid, [("a", "1"), ("b", "2")], small)
    with pytest.raises(InputError) as full:
        await store.put_collection_items(cid, [("a", "9"), ("c", "3"), ("d", "4")], small)
    assert full.value.code == "collection_full"
    assert await keys(store, cid) == ["a", "b"]
    await store.put_collection_items(cid, [("a", "9"), ("c", "3")], small)  # a is not new
    with pytest.raises(InputError) as large:
        await store.put_collection_items(cid, [("e", "x" * 11)], small)
    assert (large.value.code, large.value.field) == ("item_too_large", "items[0].value")
    with pytest.raises(InputError) as twice:
        await store.put_collection_items(cid, [("z", "1"), ("z", "2")], LIMITS)
    assert twice.value.code == "duplicate_key"
    for bad in ("", "k" * 256, "a\x00b"):
        with pytest.raises(InputError) as key:
            await store.put_collection_items(cid, [(bad, "1")], LIMITS)
        assert key.value.code == "bad_key"
    with pytest.raises(InputError) as nul:
        await store.put_collection_items(cid, [("k", "a\x00")], LIMITS)
    assert nul.value.code == "bad_value"
    assert (await store.get_collection("patients")).item_count == 3


async def test_items_are_deleted_a_bounded_batch_at_a_time(
    store: SQLStore, cid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pattern's items, or a whole collection's, go in batches of a few rows and value
    bytes, a transaction each (store/batches.py): the count and what is left stay right."""
    monkeypatch.setattr(collections, "BATCH_ROWS", 3)
    monkeypatch.setattr(collections, "BATCH_BYTES", 2_500)
    batches: list[int] = []
    monkeypatch.setattr(
        collections, "delete_items", noting_results(collections.delete_items, batches)
    )
    items = [(f"a{n}", "v" * 1_000) for n in range(5)] + [("b1", "1"), ("b2", "2")]
    await store.put_collection_items(cid, items, LIMITS)
    assert await store.delete_collection_items(cid, "a*") == 5
    assert batches == [2, 2, 1, 0]  # two values of 1,000 bytes fit 2,500, three do not
    assert (await store.get_collection("patients")).item_count == 2
    kept = await store.list_collection_items(cid, ItemFilter(), 10)
    assert [item.key for item in kept] == ["b1", "b2"]
    await store.put_collection_items(cid, items, LIMITS)
    batches.clear()
    await store.delete_collection(cid)
    assert batches == [3, 2, 2, 0]  # in id order: the two kept small ones and a0 fit
    with pytest.raises(NotFoundError):
        await store.get_collection("patients")


async def test_deleting_a_collection_or_its_project_takes_its_items(
    store: SQLStore, cid: str
) -> None:
    await store.put_collection_items(cid, [("a", "1")], LIMITS)
    await store.delete_collection(cid)
    with pytest.raises(NotFoundError):
        await store.get_collection("patients")
    again = await store.create_collection("p1", "patients")
    assert await store.get_collection_item(again.id, "a") is None
    await store.delete_project("p1")
    with pytest.raises(NotFoundError):
        await store.get_collection("patients")
