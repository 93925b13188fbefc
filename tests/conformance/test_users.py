"""Users in the store, on SQLite and PostgreSQL: one per e-mail address whatever its case,
and the first instance admin takes over the tokens made before any user existed."""

from __future__ import annotations

import pytest

from fulmen.errors import ConflictError, InputError, NotFoundError
from fulmen.store import ApiToken, NewUser, Project, Role, SQLStore

pytestmark = pytest.mark.anyio


async def test_an_email_names_one_user_whatever_its_case(store: SQLStore) -> None:
    ada = await store.create_user(NewUser(" Ada@Example.ORG ", name="Ada", password_hash="h"))
    assert (ada.email, ada.name, ada.instance_admin, ada.active) == (
        "ada@example.org",
        "Ada",
        False,
        True,
    )
    assert ada.password_changed_at is not None and not ada.totp_enabled
    assert await store.find_user("ADA@example.org") == ada
    assert await store.find_user("nobody@example.org") is None
    assert await store.find_user("not an address") is None
    assert await store.get_user(ada.id) == ada
    with pytest.raises(ConflictError):
        await store.create_user(NewUser("ada@example.org"))
    with pytest.raises(NotFoundError):
        await store.get_user("nobody")


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.org", "a da@example.org"])
async def test_an_address_that_is_none_is_refused(store: SQLStore, email: str) -> None:
    with pytest.raises(InputError) as refused:
        await store.create_user(NewUser(email))
    assert refused.value.code == "bad_email"


async def test_the_first_admin_adopts_the_operator_tokens(store: SQLStore) -> None:
    await store.put_api_token(ApiToken("op", "from fulmen up", "ab" * 32))
    viewer = await store.create_user(NewUser("viewer@example.org"))
    assert (await store.get_api_token("op")).user_id is None  # not an admin: nothing moves
    admin = await store.create_user(NewUser("admin@example.org", instance_admin=True))
    assert (await store.get_api_token("op")).user_id == admin.id
    await store.put_api_token(ApiToken("op2", "later", "cd" * 32))
    await store.create_user(NewUser("second@example.org", instance_admin=True))
    assert (await store.get_api_token("op2")).user_id is None  # only the first admin's
    assert [t.id for t in await store.list_api_tokens(admin.id)] == ["op"]
    assert await store.list_api_tokens(viewer.id) == []
    assert await store.count_users() == (3, 2)
    assert [u.email for u in await store.list_users()] == [
        "admin@example.org",
        "second@example.org",
        "viewer@example.org",
    ]


async def test_a_service_token_keeps_its_project_and_role(store: SQLStore) -> None:
    await store.create_project(Project("p1", "P1"))
    await store.put_api_token(ApiToken("svc", "ci", "ab" * 32, project_id="p1", role=Role.EDITOR))
    stored = await store.get_api_token("svc")
    assert (stored.project_id, stored.role, stored.service) == ("p1", Role.EDITOR, True)
    assert await store.roles_of("anyone") == {}
