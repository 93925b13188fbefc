"""Keychain credentials in the store (issue 19), on SQLite and PostgreSQL: saved with their
path and credentials checked, chosen when a run is made and recorded on it, the run's plan
and credential fetches following the choice, and what a keychain uses kept from deletion."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.lifecycle import RunState
from fulmen.plan import PYTHON, Edge, Job, Options
from fulmen.store import (
    AlertRule,
    DataclipType,
    EnqueueRequest,
    KeychainChoice,
    NewCredential,
    NewDataclip,
    NewKeychain,
    Project,
    RerunRequest,
    SQLStore,
    Workflow,
    WorkflowTrigger,
)

pytestmark = pytest.mark.anyio

PATH = "$.data.site_id"
CHAIN = NewKeychain(
    id="k",
    project_id="p",
    name="sites",
    path=PATH,
    entries={"north": "c-north", "south": "c-south", "42": "c-east"},
    default_credential_id="c-default",
)


def workflow(**job: object) -> Workflow:
    return Workflow(
        id="w",
        project_id="p",
        name="per site",
        jobs=(Job(id="j", body="fn(lambda s: s)", adaptor="common", language=PYTHON, **job),),  # type: ignore[arg-type]
        triggers=(WorkflowTrigger(id="t"),),
        edges=(Edge(id="e", source_trigger_id="t", target_job_id="j"),),
    )


async def seed(store: SQLStore, keychain: NewKeychain = CHAIN) -> None:
    await store.create_project(Project(id="p", name="Tenants"))
    await store.create_project(Project(id="q", name="Other"))
    for name in ("north", "south", "east", "default"):
        await store.put_credential(
            NewCredential(f"c-{name}", "p", name, {"token": f"token-of-{name}-0123456789"})
        )
    await store.put_credential(NewCredential("c-other", "q", "other", {"token": "x" * 20}))
    await store.put_keychain(keychain)
    await store.create_workflow(workflow(keychain_id="k"))


async def enqueue(store: SQLStore, body: object) -> str:
    request = EnqueueRequest(
        workflow_id="w",
        input=NewDataclip(DataclipType.HTTP_REQUEST, body),
        trigger_id="t",
        options=Options(),
    )
    return (await store.enqueue(request)).run_id


async def test_a_keychain_is_saved_listed_and_replaced(store: SQLStore) -> None:
    await seed(store)
    [listed] = await store.list_keychains("p")
    assert (listed.name, listed.path, listed.default_credential_id) == ("sites", PATH, "c-default")
    assert listed.entries == {"42": "c-east", "north": "c-north", "south": "c-south"}
    await store.put_keychain(
        replace(CHAIN, entries={"west": "c-north"}, default_credential_id=None)
    )
    got = await store.get_keychain("k")
    assert got.entries == {"west": "c-north"} and got.default_credential_id is None
    assert await store.list_keychains("q") == []


async def test_each_input_chooses_its_credential_and_the_run_records_it(store: SQLStore) -> None:
    await seed(store)
    cases = {
        "north": ("c-north", "north"),
        "south": ("c-south", "south"),
        42: ("c-east", "42"),  # a number matches as its JSON text
        "elsewhere": ("c-default", None),
    }
    for value, (credential_id, matched) in cases.items():
        run_id = await enqueue(store, {"site_id": value, "rows": [1, 2]})
        detail = await store.get_run(run_id)
        assert detail.keychains == (KeychainChoice("k", "sites", PATH, credential_id, matched),)
        assert detail.run.state is RunState.AVAILABLE
        [job] = (await store.get_plan(run_id))["jobs"]
        assert job["credential_id"] == credential_id and "keychain_id" not in job
        token = credential_id.removeprefix("c-")
        assert await store.get_credential_body(credential_id, run_id=run_id) == {
            "token": f"token-of-{token}-0123456789"
        }
        # Every other credential of the keychain is refused to this run's worker.
        for other in {"c-north", "c-south", "c-east", "c-default"} - {credential_id}:
            with pytest.raises(NotFoundError, match=f"not used by run {run_id}"):
                await store.get_credential_body(other, run_id=run_id)


async def test_no_match_and_no_default_makes_the_run_failed_with_a_clear_error(
    store: SQLStore,
) -> None:
    await seed(store, replace(CHAIN, default_credential_id=None))
    run_id = await enqueue(store, {"site_id": "atlantis", "secret": "do-not-show-me"})
    detail = await store.get_run(run_id)
    assert detail.run.state is RunState.EXCEPTION
    assert detail.run.error_type == "CredentialError"
    message = detail.run.error_message or ""
    assert "'sites'" in message and PATH in message and "'atlantis'" in message
    assert "do-not-show-me" not in message
    assert detail.keychains == (KeychainChoice("k", "sites", PATH, None, None),)
    assert await store.claim(1, ["*"], "worker-1") == []  # it never reaches a worker
    # An object at the path is told by its kind, never its content.
    run_id = await enqueue(store, {"site_id": {"secret": "do-not-show-me"}})
    message = (await store.get_run(run_id)).run.error_message or ""
    assert "an object" in message and "do-not-show-me" not in message
    run_id = await enqueue(store, {"other": 1})
    assert "nothing at $.data.site_id" in ((await store.get_run(run_id)).run.error_message or "")


async def test_a_run_that_chose_nothing_is_an_ending_its_alert_rule_may_ask_for(
    store: SQLStore,
) -> None:
    await seed(store, replace(CHAIN, default_credential_id=None))
    await store.put_alert_rule(AlertRule("w", "p", frozenset({RunState.EXCEPTION}), ()))
    run_id = await enqueue(store, {"site_id": "atlantis"})
    [alert] = await store.fold_alerts()
    assert alert.body["first_run_id"] == run_id
    assert alert.body["outcomes"] == {"exception": 1}
    assert alert.body["error_types"] == {"CredentialError": 1}


async def test_a_rerun_chooses_again_with_the_keychain_as_it_is_then(store: SQLStore) -> None:
    await seed(store)
    run_id = await enqueue(store, {"site_id": "north"})
    await store.put_keychain(replace(CHAIN, entries={"north": "c-south"}))
    work_order_id = (await store.get_run(run_id)).run.work_order_id
    rerun = await store.rerun(RerunRequest(work_order_id=work_order_id))
    assert (await store.get_run(rerun.run_id)).keychains[0].credential_id == "c-south"
    assert (await store.get_run(run_id)).keychains[0].credential_id == "c-north"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"path": "data.site_id"}, "bad_path", "path"),
        ({"path": "$.data[site"}, "bad_path", "path"),
        ({"path": "$.data[?(@.x)]"}, "bad_path", "path"),
        ({"name": " "}, "bad_name", "name"),
        ({"default_credential_id": "c-nowhere"}, "unknown_credential", "default_credential_id"),
        ({"default_credential_id": "c-other"}, "unknown_credential", "default_credential_id"),
        ({"entries": {"north": "c-other"}}, "unknown_credential", "entries.north"),
        ({"entries": {"": "c-north"}}, "bad_value", "entries"),
    ],
)
async def test_what_cannot_be_saved_is_refused_clearly(
    store: SQLStore, change: dict[str, object], code: str, field: str
) -> None:
    await seed(store)
    with pytest.raises(InputError) as info:
        await store.put_keychain(replace(CHAIN, **{"id": "k2", "name": "other", **change}))  # type: ignore[arg-type]
    assert (info.value.code, info.value.field) == (code, field)
    assert [k.id for k in await store.list_keychains("p")] == ["k"]


async def test_names_ids_and_projects_are_kept_apart(store: SQLStore) -> None:
    await seed(store)
    with pytest.raises(ConflictError, match="already has a keychain named 'sites'"):
        await store.put_keychain(replace(CHAIN, id="k2"))
    with pytest.raises(ConflictError, match="another project"):
        await store.put_keychain(
            replace(CHAIN, project_id="q", entries={}, default_credential_id="c-other")
        )
    # A job of project q cannot name project p's keychain.
    other = replace(workflow(keychain_id="k"), id="w2", project_id="q")
    with pytest.raises(NotFoundError, match="not a keychain of project q"):
        await store.create_workflow(replace(other, triggers=(WorkflowTrigger(id="t2"),), edges=(
            Edge(id="e2", source_trigger_id="t2", target_job_id="j2"),
        ), jobs=(replace(other.jobs[0], id="j2"),)))  # fmt: skip
    with pytest.raises(InputError, match="a credential or a keychain, not both"):
        await store.replace_workflow(workflow(keychain_id="k", credential_id="c-north"))


async def test_what_a_keychain_uses_cannot_be_deleted(store: SQLStore) -> None:
    await seed(store)
    with pytest.raises(ConflictError, match="can be chosen by keychain k"):
        await store.delete_credential("c-north")
    with pytest.raises(ConflictError, match="can be chosen by keychain k"):
        await store.delete_credential("c-default")
    with pytest.raises(ConflictError, match="used by job j"):
        await store.delete_keychain("k")
    await store.replace_workflow(workflow(credential_id="c-north"))
    await store.delete_keychain("k")
    await store.delete_credential("c-south")
    with pytest.raises(NotFoundError):
        await store.get_keychain("k")


async def test_a_project_goes_with_its_keychains(store: SQLStore) -> None:
    await seed(store)
    run_id = await enqueue(store, {"site_id": "north"})
    await store.delete_project("p")
    with pytest.raises(NotFoundError):
        await store.get_run(run_id)
    assert await store.list_keychains("p") == []
