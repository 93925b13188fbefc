"""Project members in the store, on SQLite and PostgreSQL (issue 18): a project's creator is
its owner from the same transaction on, a role is changed in place, the last owner can be
neither removed nor demoted, and what a user sees is the projects they are a member of."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from fulmen.errors import ConflictError, NotFoundError
from fulmen.store import (
    ApiToken,
    DataclipType,
    EnqueueRequest,
    NewDataclip,
    NewKeychain,
    NewUser,
    NewWebhookAuthMethod,
    Project,
    Role,
    RunFilter,
    SQLStore,
    StepStart,
    ThingKind,
    User,
    WebhookAuthType,
)
from fulmen.store.ownership import KINDS
from fulmen_testing.coordinator import seed

pytestmark = pytest.mark.anyio


async def _user(store: SQLStore, name: str) -> User:
    return await store.create_user(NewUser(f"{name}@example.org", name=name.title()))


async def test_the_creator_owns_the_project_and_roles_change_in_place(store: SQLStore) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    await store.create_project(Project("p1", "P1"), owner_id=ada.id)
    assert await store.roles_of(ada.id) == {"p1": Role.OWNER}
    made = await store.put_member("p1", bob.id, Role.VIEWER)
    assert (made.email, made.name, made.role) == ("bob@example.org", "Bob", Role.VIEWER)
    changed = await store.put_member("p1", bob.id, Role.ADMIN)
    assert changed.role is Role.ADMIN and changed.inserted_at == made.inserted_at
    members = await store.list_members("p1")
    assert [(m.email, m.role) for m in members] == [
        ("ada@example.org", Role.OWNER),
        ("bob@example.org", Role.ADMIN),
    ]
    await store.remove_member("p1", bob.id)
    assert await store.roles_of(bob.id) == {}
    with pytest.raises(NotFoundError):
        await store.remove_member("p1", bob.id)


async def test_a_project_for_an_unknown_owner_is_not_made(store: SQLStore) -> None:
    with pytest.raises(NotFoundError):
        await store.create_project(Project("p1", "P1"), owner_id="nobody")
    with pytest.raises(NotFoundError):
        await store.get_project("p1")


async def test_the_last_owner_stays(store: SQLStore) -> None:
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    await store.create_project(Project("p1", "P1"), owner_id=ada.id)
    for attempt in (
        store.remove_member("p1", ada.id),
        store.put_member("p1", ada.id, Role.ADMIN),
    ):
        with pytest.raises(ConflictError) as refused:
            await attempt
        assert refused.value.code == "last_owner"
    await store.put_member("p1", bob.id, Role.OWNER)
    await store.put_member("p1", ada.id, Role.EDITOR)  # bob owns it now
    with pytest.raises(ConflictError):
        await store.remove_member("p1", bob.id)
    assert await store.roles_of(bob.id) == {"p1": Role.OWNER}


async def test_two_owners_demoted_at_once_leave_one(store: SQLStore) -> None:
    """Each demotion checks the other is still an owner; under the project's lock only one
    of two at once can see that."""
    ada, bob = await _user(store, "ada"), await _user(store, "bob")
    await store.create_project(Project("p1", "P1"), owner_id=ada.id)
    await store.put_member("p1", bob.id, Role.OWNER)
    outcomes = await asyncio.gather(
        store.put_member("p1", ada.id, Role.VIEWER),
        store.put_member("p1", bob.id, Role.VIEWER),
        return_exceptions=True,
    )
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1
    owners = [m for m in await store.list_members("p1") if m.role is Role.OWNER]
    assert len(owners) == 1


async def test_members_of_unknown_projects_and_users_are_refused(store: SQLStore) -> None:
    ada = await _user(store, "ada")
    await store.create_project(Project("p1", "P1"))
    with pytest.raises(NotFoundError):
        await store.put_member("nope", ada.id, Role.VIEWER)
    with pytest.raises(NotFoundError):
        await store.put_member("p1", "nobody", Role.VIEWER)
    with pytest.raises(NotFoundError):
        await store.list_members("nope")
    assert await store.list_members("p1") == []  # made by an operator: no owner yet


async def test_a_user_lists_only_their_projects(store: SQLStore) -> None:
    ada = await _user(store, "ada")
    for name in ("p1", "p2", "p3"):
        await store.create_project(Project(name, name.upper()))
    await store.put_member("p3", ada.id, Role.VIEWER)
    await store.put_member("p1", ada.id, Role.EDITOR)
    mine = await store.list_projects(ids=(await store.roles_of(ada.id)).keys())
    assert [p.id for p in mine.items] == ["p1", "p3"]
    first = await store.list_projects(ids=["p1", "p3"], limit=1)
    rest = await store.list_projects(ids=["p1", "p3"], cursor=first.next_cursor)
    assert [p.id for p in [*first.items, *rest.items]] == ["p1", "p3"]
    assert (await store.list_projects(ids=[])).items == ()
    assert len((await store.list_projects()).items) == 3


async def test_viewers_see_bodies_is_kept(store: SQLStore) -> None:
    made = await store.create_project(Project("p1", "P1", viewers_see_bodies=True))
    assert made.viewers_see_bodies
    replaced = await store.replace_project(Project("p1", "P1"))
    assert not replaced.viewers_see_bodies
    assert not (await store.get_project("p1")).viewers_see_bodies


async def test_a_projects_service_tokens_are_listed_apart(store: SQLStore) -> None:
    ada = await _user(store, "ada")
    await store.create_project(Project("p1", "P1"))
    await store.put_api_token(ApiToken("svc", "ci", "ab" * 32, project_id="p1", role=Role.EDITOR))
    await store.put_api_token(ApiToken("mine", "laptop", "cd" * 32, user_id=ada.id))
    assert [t.id for t in await store.list_api_tokens(project_id="p1")] == ["svc"]
    assert [t.id for t in await store.list_api_tokens(ada.id)] == ["mine"]
    assert {t.id for t in await store.list_api_tokens()} == {"svc", "mine"}


async def test_each_thing_names_its_project(store: SQLStore) -> None:
    await seed(store)  # another project's things, which must not be found instead
    seeded = await seed(store)
    stored = await store.get_workflow(seeded.workflow_id)
    body = NewDataclip(DataclipType.SAVED_INPUT, {"a": 1})
    made = await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id, input=body))
    assert made.dataclip_id is not None
    (claimed,) = await store.claim(1)
    await store.start_run(claimed.id)
    await store.start_step(claimed.id, StepStart("step-1", seeded.job_ids[0]))
    method = await store.create_webhook_auth_method(
        NewWebhookAuthMethod("m1", seeded.project_id, "m", WebhookAuthType.API)
    )
    keychain = await store.put_keychain(NewKeychain("k1", seeded.project_id, "k", "$.data.k"))
    things: dict[ThingKind, str] = {
        "workflow": seeded.workflow_id,
        "trigger": seeded.webhook_id,
        "snapshot": stored.snapshot_id,
        "run": made.run_id,
        "step": "step-1",
        "work_order": made.work_order_id,
        "dataclip": made.dataclip_id,
        "credential": seeded.credential_id,
        "keychain": keychain.id,
        "webhook_auth_method": method.id,
    }
    assert set(things) == set(KINDS)
    for kind, thing_id in things.items():
        assert await store.project_of(kind, thing_id) == seeded.project_id, kind
        with pytest.raises(NotFoundError) as missing:
            await store.project_of(kind, "nope")
        assert missing.value.message == f"{kind.replace('_', ' ')} nope does not exist"


async def test_runs_are_listed_for_a_callers_projects_only(store: SQLStore) -> None:
    mine, theirs = await seed(store), await seed(store)
    for seeded in (mine, theirs):
        await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id))
    listed = await store.list_runs(RunFilter(project_ids=frozenset({mine.project_id})))
    assert [run.project_id for run in listed.items] == [mine.project_id]
    nothing = await store.list_runs(RunFilter(project_ids=frozenset()))
    assert nothing.items == ()


async def test_a_search_looks_in_bodies_only_where_they_may_be_read(store: SQLStore) -> None:
    """A viewer of a project that hides bodies must not learn what they hold by searching."""
    shown, hidden = await seed(store), await seed(store)
    for seeded in (shown, hidden):
        body = NewDataclip(DataclipType.SAVED_INPUT, {"patient": "needle-42"})
        await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id, input=body))
    both = frozenset({shown.project_id, hidden.project_id})
    where = RunFilter(project_ids=both, text="needle-42")
    assert len((await store.list_runs(where)).items) == 2
    only_shown = replace(where, body_projects=frozenset({shown.project_id}))
    found = await store.list_runs(only_shown)
    assert [run.project_id for run in found.items] == [shown.project_id]
