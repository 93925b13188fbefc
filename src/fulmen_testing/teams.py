"""People with each role in a project, for the tests of who may do what (issue 18): an owner,
an admin, an editor and a viewer of one seeded project, a user who is a member of another
project only, that other project's service token (with its strongest role), and an instance
admin; each with an API token, and each signed in to the dashboard on demand.

Users are made through the store, without passwords (signing in is not what these tests are
about): tokens through ``api.auth.issue``, dashboard sessions through the store as
``dashboard/session.py`` opens them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal
from uuid import uuid4

from fulmen.coordinator.api.auth import issue
from fulmen.coordinator.dashboard.session import COOKIE, key_of
from fulmen.store import (
    Actor,
    NewCredential,
    NewUser,
    NewWebhookAuthMethod,
    Project,
    Role,
    SessionLimits,
    SQLStore,
    User,
    WebhookAuthType,
)
from fulmen_testing.coordinator import Seeded, seed

__all__ = [
    "COOKIE",
    "MEMBERS",
    "WHO",
    "Fresh",
    "Team",
    "Who",
    "fresh_project",
    "sign_in",
    "team",
    "user",
]

Who = Literal["owner", "admin", "editor", "viewer", "outsider", "service", "instance_admin"]
#: Each kind of caller the tables test, in the order they are reported.
WHO: Final[tuple[Who, ...]] = (
    "owner",
    "admin",
    "editor",
    "viewer",
    "outsider",
    "service",
    "instance_admin",
)
#: Those with a role in the team's project, and which.
MEMBERS: Final[dict[Who, Role]] = {
    "owner": Role.OWNER,
    "admin": Role.ADMIN,
    "editor": Role.EDITOR,
    "viewer": Role.VIEWER,
}
_SESSION: Final = SessionLimits(idle=timedelta(hours=1), absolute=timedelta(hours=2))

#: Who the team's tokens are made by in the audit trail: the test's set-up.
SET_UP: Final = Actor("cli", "0", "tests")


@dataclass
class Team:
    """The seeded project (``seeded``), another project (``other_project_id``) and who is
    who: ``users`` (every caller but the service token) and ``tokens`` (each caller's API
    token)."""

    seeded: Seeded
    other_project_id: str
    users: dict[Who, User] = field(default_factory=dict)
    tokens: dict[Who, str] = field(default_factory=dict)

    @property
    def project_id(self) -> str:
        return self.seeded.project_id

    def bearer(self, who: Who) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


async def user(store: SQLStore, label: str, *, instance_admin: bool = False) -> User:
    """A new user, ``label`` in their e-mail address (made unique)."""
    email = f"{label}-{uuid4().hex[:8]}@example.org"
    return await store.create_user(NewUser(email, name=label, instance_admin=instance_admin))


async def team(store: SQLStore, seeded: Seeded | None = None) -> Team:
    """Everyone, around ``seeded`` (a newly seeded project when not given)."""
    seeded = seeded or await seed(store)
    other = await store.create_project(Project(str(uuid4()), "another team's"))
    made = Team(seeded, other.id)
    for who in WHO:
        if who == "service":
            token, _ = await issue(store, SET_UP, "their CI", project_id=other.id, role=Role.OWNER)
            made.tokens[who] = token
            continue
        person = await user(store, who, instance_admin=who == "instance_admin")
        made.users[who] = person
        made.tokens[who], _ = await issue(store, SET_UP, f"{who}'s laptop", user_id=person.id)
        if who in MEMBERS:
            await store.put_member(seeded.project_id, person.id, MEMBERS[who])
        elif who == "outsider":
            await store.put_member(other.id, person.id, Role.OWNER)
    return made


@dataclass(frozen=True)
class Fresh:
    """A project of the same team made for one request that deletes what it names: its
    workflow, a credential no job uses, a webhook auth method, a viewer to remove, the
    owner's own token, a service token and a collection."""

    project_id: str
    workflow_id: str
    credential_id: str
    method_id: str
    member_id: str
    owner_token_id: str
    service_token_id: str
    collection_name: str


async def fresh_project(store: SQLStore, team: Team) -> Fresh:
    seeded = await seed(store)
    for who, role in MEMBERS.items():
        await store.put_member(seeded.project_id, team.users[who].id, role)
    unused = await store.put_credential(
        NewCredential(str(uuid4()), seeded.project_id, "unused", {"key": "value"})
    )
    method = await store.create_webhook_auth_method(
        NewWebhookAuthMethod(str(uuid4()), seeded.project_id, "m", WebhookAuthType.API)
    )
    member = await user(store, "leaving")
    await store.put_member(seeded.project_id, member.id, Role.VIEWER)
    _, own = await issue(store, SET_UP, "owner's spare", user_id=team.users["owner"].id)
    _, service = await issue(store, SET_UP, "ci", project_id=seeded.project_id, role=Role.VIEWER)
    collection = await store.create_collection(seeded.project_id, f"fresh-{uuid4().hex[:12]}")
    return Fresh(
        seeded.project_id,
        seeded.workflow_id,
        unused.id,
        method.id,
        member.id,
        own.id,
        service.id,
        collection.name,
    )


async def sign_in(
    store: SQLStore, *, user_id: str | None = None, token_id: str | None = None
) -> str:
    """A dashboard session for the user (or a token), as signing in opens one: the value
    of its cookie (``COOKIE``, path ``/ui``)."""
    session_id = secrets.token_urlsafe(32)
    await store.open_dashboard_session(
        key_of(session_id), _SESSION, user_id=user_id, token_id=token_id
    )
    return session_id
