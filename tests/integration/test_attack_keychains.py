"""Attacks on keychain credentials (issue 19) on a real store and a real coordinator over
loopback: an input crafted to choose another project's credential or one the keychain does not
list, keychains naming credentials outside their project, JSONPath expressions that try to
escape the subset or cost much, a run's worker asking for credentials its run did not choose
(another run's choice among them), and a chosen value echoed back in every shape a job might
print it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from fulmen.errors import InputError, NotFoundError
from fulmen.lifecycle import RunState
from fulmen.plan import Options
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewCredential,
    NewDataclip,
    NewKeychain,
    SQLStore,
)
from fulmen_testing.coordinator import (
    ACCEPTS,
    RawWorker,
    Seeded,
    seed,
    serve,
)
from fulmen_testing.operator import BACKENDS, store_at

pytestmark = pytest.mark.anyio

A_TOKEN = "tok-site-a-5f4e3d2c1b"
B_TOKEN = "tok-site-b-0a9b8c7d6e"
THEIR_TOKEN = "tok-their-77aa88bb99"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    seeded: Seeded
    #: The team's credentials by name (a, b) and the other project's (theirs).
    ids: dict[str, str]
    keychain_id: str

    async def run_with(self, site: Any) -> str:
        made = await self.store.enqueue(
            EnqueueRequest(
                self.seeded.workflow_id,
                input=NewDataclip(DataclipType.HTTP_REQUEST, {"site": site}),
                trigger_id=self.seeded.webhook_id,
                options=Options(run_timeout_ms=60_000),
            )
        )
        return made.run_id


@pytest.fixture(params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """On SQLite and PostgreSQL: the queries that find a project's credentials and choose
    differ between them."""
    async with store_at(request.param, tmp_path) as (store, _):
        seeded = await seed(store)
        other = await seed(store)
        project = seeded.project_id
        a = await store.put_credential(NewCredential(str(uuid4()), project, "a", {"t": A_TOKEN}))
        b = await store.put_credential(NewCredential(str(uuid4()), project, "b", {"t": B_TOKEN}))
        theirs = await store.put_credential(
            NewCredential(str(uuid4()), other.project_id, "theirs", {"t": THEIR_TOKEN})
        )
        await store.put_keychain(
            NewKeychain(
                str(uuid4()), other.project_id, "their sites", "$.data.site", {"x": theirs.id}
            )
        )
        keychain = await store.put_keychain(
            NewKeychain(str(uuid4()), project, "sites", "$.data.site", {"a": a.id, "b": b.id})
        )
        stored = await store.get_workflow(seeded.workflow_id)
        first, *rest = stored.workflow.jobs
        jobs = (replace(first, credential_id=None, keychain_id=keychain.id), *rest)
        await store.replace_workflow(replace(stored.workflow, jobs=jobs))
        ids = {"a": a.id, "b": b.id, "theirs": theirs.id, "seeded": seeded.credential_id}
        yield World(store, seeded, ids, keychain.id)


async def test_an_input_cannot_choose_a_credential_the_keychain_does_not_list(
    world: World,
) -> None:
    for site in (
        world.ids["theirs"],  # another project's credential, by id
        "x",  # the value another project's keychain lists
        world.ids["a"],  # this project's credential by id, not by the keychain's value
        world.ids["seeded"],
        "A",
        "a ",
        " a",
        "a\u200b",
        ["a"],
        {"a": "a"},
        {"$ref": "a"},
        None,
        "' OR '1'='1",
        "*",
        "%",
    ):
        detail = await world.store.get_run(await world.run_with(site))
        run = detail.run
        assert run.state is RunState.EXCEPTION and run.error_type == "CredentialError", site
        [choice] = detail.keychains
        assert choice.credential_id is None and choice.matched is None, site
        # The error quotes the value sent (the sender's own), never a credential's value.
        assert not any(t in (run.error_message or "") for t in (A_TOKEN, B_TOKEN, THEIR_TOKEN))
        if isinstance(site, dict | list):
            assert "an object" in (run.error_message or "") or "an array" in (
                run.error_message or ""
            )
    chosen = await world.store.get_run(await world.run_with("a"))
    assert [c.credential_id for c in chosen.keychains] == [world.ids["a"]]


async def test_a_keychain_cannot_list_another_projects_credential(world: World) -> None:
    project = world.seeded.project_id
    for entries, default in (
        ({"a": world.ids["theirs"]}, None),
        ({"a": world.ids["a"]}, world.ids["theirs"]),
        ({"a": "no-such-credential"}, None),
    ):
        with pytest.raises(InputError) as refused:
            await world.store.put_keychain(
                NewKeychain(str(uuid4()), project, "k", "$.data.site", entries, default)
            )
        assert refused.value.code == "unknown_credential"
    # Replacing the keychain in place, pointing it at their credential: refused, unchanged.
    with pytest.raises(InputError):
        await world.store.put_keychain(
            NewKeychain(
                world.keychain_id, project, "sites", "$.data.site", {"a": world.ids["theirs"]}
            )
        )
    kept = await world.store.get_keychain(world.keychain_id)
    assert kept.entries == {"a": world.ids["a"], "b": world.ids["b"]}


@pytest.mark.parametrize(
    "path",
    [
        "$..site",
        "$.data[?(@.site)]",
        "$.data.site.__class__.__init__.__globals__",
        "$['data']['site'] + 1",
        "$.data.site; import os",
        "$" + "[*]" * 200,
        "$[99999999999999999999999999999999999999999999999999]",
        "data.site",
        "",
        "$.data.(site)",
    ],
)
async def test_paths_outside_the_subset_or_too_long_are_refused_or_harmless(
    world: World, path: str
) -> None:
    keychain = NewKeychain(
        str(uuid4()), world.seeded.project_id, f"k{uuid4().hex[:6]}", path, {"a": world.ids["a"]}
    )
    try:
        await world.store.put_keychain(keychain)
    except InputError as refused:
        assert refused.code == "bad_path" and refused.field == "path"
        return
    # Accepted: it reads only the run's own input, and a deep or wide input costs its size.
    stored = await world.store.get_workflow(world.seeded.workflow_id)
    first, *rest = stored.workflow.jobs
    jobs = (replace(first, keychain_id=keychain.id), *rest)
    await world.store.replace_workflow(replace(stored.workflow, jobs=jobs))
    deep: Any = "a"
    for _ in range(200):
        deep = [deep, deep] if isinstance(deep, str) else [deep]
    run = await world.store.get_run(await world.run_with(deep))
    assert run.keychains[0].credential_id in (world.ids["a"], None)


async def test_a_runs_worker_cannot_fetch_what_its_keychain_did_not_choose(world: World) -> None:
    """Run 1 chose a; run 2 (another tenant) chose b. Run 1's worker, holding run 1's token,
    asks for b, for their project's credential, and for b under run 2's topic."""
    async with serve(world.store) as served:
        first = await world.run_with("a")
        second = await world.run_with("b")
        async with RawWorker.connect(served.socket_url) as worker:
            assert await worker.join("worker:queue", {}) == ("ok", {"accepts": ACCEPTS})
            status, reply = await worker.call(
                "worker:queue", "claim", {"demand": 2, "languages": ["python"], "worker_name": None}
            )
            assert status == "ok", reply
            tokens = {entry["id"]: entry["token"] for entry in reply["runs"]}
            assert set(tokens) == {first, second}
            topic = f"run:{first}"
            assert await worker.join(topic, {"token": tokens[first]}) == ("ok", {})
            for refused in (
                world.ids["b"],
                world.ids["theirs"],
                world.ids["seeded"],
                world.keychain_id,
            ):
                status, answer = await worker.call(topic, "fetch:credential", {"id": refused})
                assert (status, answer) == ("error", {"errors": {"id": ["Credential not found!"]}})
            # Run 2's topic with run 1's token: refused at the join.
            status, _ = await worker.join(f"run:{second}", {"token": tokens[first]})
            assert status == "error"
            assert await worker.call(topic, "fetch:credential", {"id": world.ids["a"]}) == (
                "ok",
                {"t": A_TOKEN},
            )


async def test_the_chosen_value_is_masked_in_every_shape_a_job_prints_it(world: World) -> None:
    async with serve(world.store) as served:
        run_id = await world.run_with("a")
        async with RawWorker.connect(served.socket_url) as worker:
            await worker.join("worker:queue", {})
            _, reply = await worker.call(
                "worker:queue", "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
            )
            [entry] = reply["runs"]
            topic = f"run:{run_id}"
            assert await worker.join(topic, {"token": entry["token"]}) == ("ok", {})
            stamp = "1760000000000000"
            step_id = str(uuid4())
            assert (await worker.call(topic, "run:start", {"timestamp": stamp}))[0] == "ok"
            start = {
                "step_id": step_id,
                "job_id": world.seeded.job_ids[0],
                "input_dataclip_id": (await world.store.get_run(run_id)).run.dataclip_id,
                "timestamp": stamp,
            }
            assert (await worker.call(topic, "step:start", start))[0] == "ok"
            shapes = [
                f"plain {A_TOKEN}",
                json.dumps({"configuration": {"t": A_TOKEN}}),
                f"in a url https://x.example/?t={A_TOKEN}&n=1",
            ]
            for message in shapes:
                line = {
                    "run_id": run_id,
                    "step_id": step_id,
                    "message": [message],
                    "source": "JOB",
                    "level": "info",
                    "timestamp": stamp,
                }
                assert (await worker.call(topic, "run:log", line))[0] == "ok"
    logs = await world.store.get_logs(run_id)
    text = "\n".join(entry.message for entry in logs.items)
    assert A_TOKEN not in text and text.count("***") == len(shapes), text


async def test_a_keychain_of_another_project_cannot_be_named_by_a_workflow(world: World) -> None:
    other = await seed(world.store)
    their_keychain = await world.store.put_keychain(
        NewKeychain(str(uuid4()), other.project_id, "k", "$.data.site", {})
    )
    stored = await world.store.get_workflow(world.seeded.workflow_id)
    first, *rest = stored.workflow.jobs
    jobs = (replace(first, keychain_id=their_keychain.id), *rest)
    with pytest.raises(NotFoundError) as refused:
        await world.store.replace_workflow(replace(stored.workflow, jobs=jobs))
    assert refused.value.field == "keychain_id"
