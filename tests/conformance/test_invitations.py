"""Invitations in the store, on SQLite and PostgreSQL: kept by digest, used once, until they
expire; accepting makes the user with the chosen password (or finds the existing one, whose
password stays), gives the role without ever lowering a stronger one, and makes an instance
admin when it says so; two acceptances at once make one user."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import NewInvitation, NewUser, Project, Role, SQLStore, open_store
from fulmen_testing.clock import FakeClock

from .conftest import KEY, Backend

pytestmark = pytest.mark.anyio

WEEK = timedelta(days=7)


@pytest.fixture
async def project(store: SQLStore) -> str:
    return (await store.create_project(Project("p1", "P1"))).id


async def invite(store: SQLStore, clock: FakeClock, digest: str, **given: object) -> None:
    new = NewInvitation(**{"email": "ada@example.org", **given})  # type: ignore[arg-type]
    await store.create_invitation(new, digest, clock.now() + WEEK)


async def code_of(store: SQLStore, digest: str) -> str:
    with pytest.raises(NotFoundError) as refused:
        await store.get_invitation(digest)
    return refused.value.code


async def test_an_invitation_makes_its_user_once(
    store: SQLStore, clock: FakeClock, project: str
) -> None:
    await invite(store, clock, "d1", email=" Ada@Example.org", project_id=project, role=Role.EDITOR)
    held = await store.get_invitation("d1")
    assert (held.email, held.project_id, held.role, held.instance_admin) == (
        "ada@example.org",
        project,
        Role.EDITOR,
        False,
    )
    assert [i.digest for i in await store.list_invitations()] == ["d1"]

    user, used = await store.accept_invitation("d1", password_hash="hash", name="Ada")
    assert (user.email, user.name, user.password_hash, user.instance_admin) == (
        "ada@example.org",
        "Ada",
        "hash",
        False,
    )
    assert used.digest == "d1"
    assert await store.roles_of(user.id) == {project: Role.EDITOR}
    assert await code_of(store, "d1") == "invitation_used"
    with pytest.raises(NotFoundError):
        await store.accept_invitation("d1", password_hash="other")
    assert await store.list_invitations() == []
    assert await code_of(store, "nothing") == "unknown_invitation"


async def test_an_invitation_expires(store: SQLStore, clock: FakeClock) -> None:
    await invite(store, clock, "d1", instance_admin=True)
    clock.advance(WEEK.total_seconds() - 1)
    assert (await store.get_invitation("d1")).instance_admin
    clock.advance(1)
    assert await code_of(store, "d1") == "invitation_expired"
    with pytest.raises(NotFoundError):
        await store.accept_invitation("d1", password_hash="hash")
    assert await store.find_user("ada@example.org") is None


async def test_an_existing_user_keeps_their_password_and_stronger_role(
    store: SQLStore, clock: FakeClock, project: str
) -> None:
    ada = await store.create_user(NewUser("ada@example.org", password_hash="theirs"))
    await invite(store, clock, "admin", project_id=project, role=Role.ADMIN)
    await invite(store, clock, "viewer", project_id=project, role=Role.VIEWER)
    await invite(store, clock, "instance", instance_admin=True)
    user, _ = await store.accept_invitation("admin", password_hash=None)
    assert user.id == ada.id and user.password_hash == "theirs"
    assert await store.roles_of(ada.id) == {project: Role.ADMIN}
    with pytest.raises(ConflictError) as exists:  # a new account's password: not hers
        await store.accept_invitation("viewer", password_hash="someone else's")
    assert exists.value.code == "user_exists"
    assert (await store.get_invitation("viewer")).accepted_at is None  # nothing used up
    await store.accept_invitation("viewer", password_hash=None)
    assert await store.roles_of(ada.id) == {project: Role.ADMIN}  # never lowered
    user, _ = await store.accept_invitation("instance", password_hash=None)
    assert user.instance_admin and user.password_hash == "theirs"


async def test_what_an_invitation_cannot_be(
    store: SQLStore, clock: FakeClock, project: str
) -> None:
    with pytest.raises(InputError) as refused:
        await invite(store, clock, "d", project_id=project)
    assert refused.value.code == "bad_invitation"
    with pytest.raises(InputError):
        await invite(store, clock, "d", role=Role.VIEWER)
    with pytest.raises(InputError) as refused:
        await invite(store, clock, "d", email="not an address")
    assert refused.value.code == "bad_email"
    with pytest.raises(NotFoundError):
        await invite(store, clock, "d", project_id="nowhere", role=Role.VIEWER)

    await invite(store, clock, "new")
    with pytest.raises(InputError) as refused:  # a new user needs a password
        await store.accept_invitation("new", password_hash=None)
    assert refused.value.code == "password_required"
    assert (await store.get_invitation("new")).accepted_at is None  # nothing was used up

    await store.create_user(NewUser("admin@example.org", instance_admin=True))
    bob = await store.create_user(NewUser("bob@example.org"))
    await invite(store, clock, "bob", email="bob@example.org", project_id=project, role=Role.VIEWER)
    await store.set_user_disabled(bob.id, True)
    with pytest.raises(ConflictError) as conflict:
        await store.accept_invitation("bob", password_hash=None)
    assert conflict.value.code == "user_disabled"
    with pytest.raises(ConflictError):
        await invite(store, clock, "bob2", email="bob@example.org")


async def test_a_revoked_invitation_opens_nothing(store: SQLStore, clock: FakeClock) -> None:
    await invite(store, clock, "d1")
    await store.delete_invitation("d1")
    assert await code_of(store, "d1") == "unknown_invitation"
    with pytest.raises(NotFoundError):
        await store.delete_invitation("d1")


async def test_two_acceptances_at_once_make_one_user(
    store: SQLStore, clock: FakeClock, backend: Backend
) -> None:
    await invite(store, clock, "d1")
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as other:
        results = await asyncio.gather(
            store.accept_invitation("d1", password_hash="one"),
            other.accept_invitation("d1", password_hash="two"),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], NotFoundError | ConflictError)
    assert len(await store.list_users()) == 1
