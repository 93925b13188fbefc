"""Users and invitations through the REST API, on a real coordinator over loopback (issue
18): only an instance admin lists and changes users; a disabled user's tokens are refused;
the last active admin stays; an invitation is made by whoever may give what it gives (a
project's admin to their project, not as owner, not elsewhere, not an instance admin), its
link shown once, and revoked by an instance admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator.api.auth import issue
from fulmen.coordinator.audit import command_line
from fulmen.coordinator.invitations import digest_of
from fulmen.store import AuditFilter, NewInvitation, NewUser, Project, Role, SQLStore, User
from fulmen_testing.coordinator import api_token, serve, sqlite_store

pytestmark = pytest.mark.anyio

#: When the invitations that make members expire: not during a test.
FAR = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Api:
    store: SQLStore
    http: httpx2.AsyncClient
    project_id: str

    async def token_of(self, user: User) -> str:
        token, _ = await issue(self.store, command_line(), "tests", user_id=user.id)
        return token

    async def call(
        self, token: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.http.request(method, path, json=body, headers=headers)

    async def member(self, email: str, role: Role) -> User:
        """A user with ``role`` in the project: made by accepting an invitation."""
        await self.store.create_invitation(
            NewInvitation(email, self.project_id, role), f"d-{email}", FAR
        )
        user, _ = await self.store.accept_invitation(f"d-{email}", password_hash="h")
        return user


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        project = await store.create_project(Project("p1", "One"))
        await store.create_project(Project("p2", "Two"))
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            yield Api(store, http, project.id)


def code(response: httpx2.Response) -> str:
    body: dict[str, dict[str, str]] = response.json()
    return body["error"]["code"]


async def test_an_instance_admin_lists_and_changes_users(api: Api) -> None:
    operator = await api_token(api.store)  # made before any user: the first admin's
    assert (await api.call(operator, "GET", "/api/users")).json() == {
        "items": [],
        "next_cursor": None,
    }
    admin = await api.store.create_user(NewUser("admin@example.org", instance_admin=True))
    ada = await api.member("ada@example.org", Role.EDITOR)
    listed = (await api.call(operator, "GET", "/api/users")).json()["items"]
    assert [(u["email"], u["instance_admin"], u["active"]) for u in listed] == [
        ("ada@example.org", False, True),
        ("admin@example.org", True, True),
    ]
    assert "password_hash" not in listed[0]

    ada_token = await api.token_of(ada)
    assert (await api.call(ada_token, "GET", "/api/projects/p1")).status_code == 200
    made = await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"instance_admin": True})
    assert made.status_code == 200 and made.json()["instance_admin"] is True
    disabled = await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"disabled": True})
    assert disabled.json()["active"] is False and disabled.json()["disabled_at"]
    assert (await api.call(ada_token, "GET", "/api/projects/p1")).status_code == 401
    enabled = await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"disabled": False})
    assert enabled.json()["active"] is True
    assert (await api.call(ada_token, "GET", "/api/projects/p1")).status_code == 200

    # the last active admin stays one
    await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"instance_admin": False})
    for change in ({"disabled": True}, {"instance_admin": False}):
        refused = await api.call(operator, "PATCH", f"/api/users/{admin.id}", change)
        assert refused.status_code == 409 and code(refused) == "last_admin", refused.text
    assert (await api.call(operator, "PATCH", "/api/users/nobody", {})).status_code == 404
    bad = await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"disabled": "yes"})
    assert bad.status_code == 422
    extra = await api.call(operator, "PATCH", f"/api/users/{ada.id}", {"email": "x@example.org"})
    assert extra.status_code == 422


async def test_an_instance_admin_removes_a_lost_second_factor(api: Api) -> None:
    """A user who lost their phone and their recovery codes: an instance admin removes the
    second factor (recorded), and they sign in with their password to enrol again; ``true``
    is refused (only the user enrols)."""
    operator = await api_token(api.store)
    await api.store.create_user(NewUser("admin@example.org", instance_admin=True))
    ada = await api.member("ada@example.org", Role.EDITOR)
    await api.store.begin_totp(ada.id, "JBSWY3DPEHPK3PXP")
    await api.store.enable_totp(ada.id, 1, ["digest"])
    assert (await api.store.get_user(ada.id)).totp_enabled
    path = f"/api/users/{ada.id}"
    refused = await api.call(operator, "PATCH", path, {"second_factor": True})
    assert refused.status_code == 422
    removed = await api.call(operator, "PATCH", path, {"second_factor": False})
    assert removed.status_code == 200 and removed.json()["totp_enabled"] is False
    assert await api.store.get_second_factor(ada.id) is None
    [record] = (await api.store.list_audit(AuditFilter(action="user.second_factor_removed"))).items
    # the operator token is the first admin's now
    assert (record.target.id, record.actor.name) == (ada.id, "admin@example.org")
    ada_token = await api.token_of(ada)  # no instance admin: may not remove anyone's
    other = await api.call(ada_token, "PATCH", path, {"second_factor": False})
    assert other.status_code == 403


async def test_a_user_who_is_no_instance_admin_manages_no_users(api: Api) -> None:
    await api.store.create_user(NewUser("admin@example.org", instance_admin=True))
    owner = await api.member("owner@example.org", Role.OWNER)
    token = await api.token_of(owner)
    listed = await api.call(token, "GET", "/api/users")
    assert listed.status_code == 403 and "instance admin" in listed.json()["error"]["message"]
    patched = await api.call(token, "PATCH", f"/api/users/{owner.id}", {"instance_admin": True})
    assert patched.status_code == 403
    assert not (await api.store.get_user(owner.id)).instance_admin
    assert (await api.call(token, "GET", "/api/invitations")).status_code == 403


async def test_an_instance_admin_invites_and_the_link_is_shown_once(api: Api) -> None:
    operator = await api_token(api.store)
    made = await api.call(
        operator,
        "POST",
        "/api/invitations",
        {"email": "Bob@Example.org", "project_id": "p1", "role": "viewer"},
    )
    assert made.status_code == 201, made.text
    doc = made.json()
    assert (doc["email"], doc["project_id"], doc["role"], doc["instance_admin"]) == (
        "bob@example.org",
        "p1",
        "viewer",
        False,
    )
    url = doc["url"]
    assert url.startswith(str(api.http.base_url).rstrip("/") + "/ui/invitations/")
    secret = url.rsplit("/", 1)[1]
    assert doc["id"] == digest_of(secret)
    assert (await api.http.get(url)).status_code == 200  # the page it opens

    listed = (await api.call(operator, "GET", "/api/invitations")).json()["items"]
    assert [(i["id"], i["url"]) for i in listed] == [(doc["id"], None)]  # never again
    assert secret not in str(listed)

    revoked = await api.call(operator, "DELETE", f"/api/invitations/{doc['id']}")
    assert revoked.status_code == 204
    assert (await api.http.get(url)).status_code == 404
    again = await api.call(operator, "DELETE", f"/api/invitations/{doc['id']}")
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("invitation", "status", "error"),
    [
        ({"project_id": "p1", "role": "editor"}, 201, None),
        ({"project_id": "p1", "role": "admin"}, 201, None),
        ({"project_id": "p1", "role": "owner"}, 403, "forbidden"),
        ({"project_id": "p2", "role": "viewer"}, 404, "not_a_member"),
        ({"project_id": "p1", "role": "viewer", "instance_admin": True}, 403, "forbidden"),
        ({}, 403, "forbidden"),
        ({"project_id": "p1"}, 422, "bad_invitation"),
        ({"project_id": "p1", "role": "emperor"}, 422, None),
        ({"project_id": "p1", "role": "viewer", "email": "not an address"}, 422, "bad_email"),
    ],
)
async def test_a_project_admin_invites_to_their_project_only(
    api: Api, invitation: dict[str, Any], status: int, error: str | None
) -> None:
    await api.store.create_user(NewUser("admin@example.org", instance_admin=True))
    admin = await api.member("padmin@example.org", Role.ADMIN)
    body = {"email": "new@example.org", **invitation}
    answer = await api.call(await api.token_of(admin), "POST", "/api/invitations", body)
    assert answer.status_code == status, answer.text
    if error is not None:
        assert code(answer) == error


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
async def test_a_viewer_or_editor_invites_nobody(api: Api, role: Role) -> None:
    await api.store.create_user(NewUser("admin@example.org", instance_admin=True))
    member = await api.member("member@example.org", role)
    body = {"email": "new@example.org", "project_id": "p1", "role": "viewer"}
    answer = await api.call(await api.token_of(member), "POST", "/api/invitations", body)
    assert answer.status_code == 403 and "admin role" in answer.json()["error"]["message"]
    assert await api.store.list_invitations() == []


async def test_a_service_token_with_the_admin_role_invites_to_its_project(api: Api) -> None:
    token, _ = await issue(api.store, command_line(), "ci", project_id="p1", role=Role.ADMIN)
    body = {"email": "new@example.org", "project_id": "p1", "role": "editor"}
    made = await api.call(token, "POST", "/api/invitations", body)
    assert made.status_code == 201, made.text
    (stored,) = await api.store.list_invitations()
    assert stored.invited_by is None  # a token is no user
