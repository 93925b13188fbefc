"""Who may do what through the REST API (issue 18), on a real coordinator over loopback.

The table: every ``/api`` route of the app's own OpenAPI document, each with what it takes (a
permission of coordinator/access.py, or a rule of its own), tried by each kind of caller: a
project's owner, admin, editor and viewer, a user who is not a member of it, another
project's service token (with that project's strongest role) and an instance admin. An
allowed caller gets past the check (no 401, 403 or ``not_a_member``); a refused one gets 403
``forbidden`` (a role too weak) or 404 ``not_a_member`` (not theirs to know of). A route the
table does not list fails the test: a new route must say who may use it.

Then what the table cannot say: grants no stronger than one's own, the last owner, listings
limited to one's projects, personal and service tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal
from uuid import uuid4

import httpx2
import pytest

from fulmen.coordinator.access import GRANTS, Permission
from fulmen.store import (
    ChannelType,
    DataclipType,
    EnqueueRequest,
    NewAlertChannel,
    NewDataclip,
    NewWebhookAuthMethod,
    SQLStore,
    StepStart,
    WebhookAuthType,
)
from fulmen_testing.coordinator import serve, sqlite_store
from fulmen_testing.npm_registry import npm_registry
from fulmen_testing.teams import MEMBERS, WHO, Fresh, Team, Who, fresh_project, team, user

pytestmark = pytest.mark.anyio

P = Permission
Outcome = Literal["allowed", "forbidden", "not_a_member"]
#: A rule of its own: what each caller gets.
Rule = Permission | Mapping[Who, Outcome]

ANYONE: Final[Mapping[Who, Outcome]] = dict.fromkeys(WHO, "allowed")
#: A service token is no user: no personal tokens, no projects of its own.
USERS: Final[Mapping[Who, Outcome]] = {**ANYONE, "service": "forbidden"}
#: The instance's settings: instance admins only.
INSTANCE_ADMINS: Final[Mapping[Who, Outcome]] = {
    **dict.fromkeys(WHO, "forbidden"),
    "instance_admin": "allowed",
}
#: Revoking the owner's own token: the owner and an instance admin.
OWNERS_TOKEN: Final[Mapping[Who, Outcome]] = {
    **dict.fromkeys(WHO, "forbidden"),
    "owner": "allowed",
    "instance_admin": "allowed",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    http: httpx2.AsyncClient
    team: Team
    #: The path parameters every request shares (a fresh project's replace some).
    ids: dict[str, str] = field(default_factory=dict)
    #: E-mail addresses of users who are no members yet.
    newcomer: str = ""


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    path = tmp_path_factory.mktemp("roles") / "fulmen.db"
    with npm_registry() as registry:
        async with (
            sqlite_store(str(path)) as store,
            serve(store, npm_registry=registry.url) as served,
            httpx2.AsyncClient(base_url=served.base_url) as http,
        ):
            yield await _world(store, http)


async def _world(store: SQLStore, http: httpx2.AsyncClient) -> World:
    """The team, and one of each thing a route names in its project."""
    people = await team(store)
    seeded = people.seeded
    method = await store.create_webhook_auth_method(
        NewWebhookAuthMethod(str(uuid4()), seeded.project_id, "m", WebhookAuthType.API)
    )
    step_id = await _a_step(store, seeded.workflow_id, seeded.job_ids[0])
    channel = await store.create_alert_channel(
        NewAlertChannel(str(uuid4()), seeded.project_id, "ops", ChannelType.EMAIL, ("o@x.org",))
    )
    body = NewDataclip(DataclipType.SAVED_INPUT, {"patient": "Ada"})
    run = await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id, input=body))
    assert run.dataclip_id is not None
    stored = await store.get_workflow(seeded.workflow_id)
    ids = {
        "project_id": seeded.project_id,
        "workflow_id": seeded.workflow_id,
        "trigger_id": seeded.webhook_id,
        "snapshot_id": stored.snapshot_id,
        "credential_id": seeded.credential_id,
        "method_id": method.id,
        "run_id": run.run_id,
        "work_order_id": run.work_order_id,
        "dataclip_id": run.dataclip_id,
        "step_id": step_id,
        "user_id": (await user(store, "promoted")).id,
        "channel_id": channel.id,
        "invitation_id": "0" * 64,  # none: an allowed caller gets 404 past the check
        "name": (await store.create_collection(seeded.project_id, "roles")).name,
    }
    return World(store, http, people, ids, (await user(store, "newcomer")).email)


async def _a_step(store: SQLStore, workflow_id: str, job_id: str) -> str:
    """A run claimed and started, with its first step begun: what a rerun starts from."""
    made = await store.enqueue(EnqueueRequest(workflow_id=workflow_id))
    (claimed,) = await store.claim(1)
    assert claimed.id == made.run_id
    await store.join_run(claimed.id)
    now = datetime.now(UTC)
    await store.start_run(claimed.id, timestamp=now)
    step_id = str(uuid4())
    await store.start_step(claimed.id, StepStart(step_id, job_id, made.dataclip_id, timestamp=now))
    return step_id


@dataclass(frozen=True)
class Row:
    """One route: what it takes, and how to ask it. ``fresh`` (for a request that deletes
    what it names) gives each caller a new project, and says which of its ids to use."""

    rule: Rule
    body: Callable[[World], object] | None = None
    query: str = ""
    fresh: Callable[[Fresh], dict[str, str]] | None = None


def _workflow(_: World) -> dict[str, object]:
    return {"name": "made", "jobs": [{"body": "fn(lambda s: s)", "adaptor": "common"}]}


def _deployment(w: World) -> dict[str, object]:
    """The team's project as it is, with one more workflow: what an editor may deploy (new
    settings or credentials take an admin: test_deployments_api.py)."""
    return {"project": {"id": w.ids["project_id"], "name": "tests"}, "workflows": [_workflow(w)]}


#: Every /api route: (method, path as the OpenAPI document writes it) → its row.
TABLE: Final[dict[tuple[str, str], Row]] = {
    # projects
    ("GET", "/api/projects"): Row(ANYONE),
    ("POST", "/api/projects"): Row(USERS, body=lambda w: {"name": "a new one"}),
    ("GET", "/api/projects/{project_id}"): Row(P.READ),
    ("PUT", "/api/projects/{project_id}"): Row(P.MANAGE, body=lambda w: {"name": "tests"}),
    ("DELETE", "/api/projects/{project_id}"): Row(
        P.OWN, fresh=lambda f: {"project_id": f.project_id}
    ),
    # workflows
    ("GET", "/api/projects/{project_id}/workflows"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/workflows"): Row(P.EDIT, body=_workflow),
    ("GET", "/api/workflows/{workflow_id}"): Row(P.READ),
    ("PUT", "/api/workflows/{workflow_id}"): Row(
        P.EDIT, body=_workflow, fresh=lambda f: {"workflow_id": f.workflow_id}
    ),
    ("DELETE", "/api/workflows/{workflow_id}"): Row(
        P.EDIT, fresh=lambda f: {"workflow_id": f.workflow_id}
    ),
    ("GET", "/api/snapshots/{snapshot_id}"): Row(P.READ),
    ("POST", "/api/deployments"): Row(P.EDIT, body=_deployment),
    # credentials
    ("GET", "/api/projects/{project_id}/credentials"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/credentials"): Row(
        P.MANAGE, body=lambda w: {"name": "new", "body": {"key": "value"}}
    ),
    ("PUT", "/api/projects/{project_id}/credentials/{credential_id}"): Row(
        P.MANAGE, body=lambda w: {"name": "api", "body": {"user": "alice", "password": "pw"}}
    ),
    ("DELETE", "/api/credentials/{credential_id}"): Row(
        P.MANAGE, fresh=lambda f: {"credential_id": f.credential_id}
    ),
    # runs and their data
    ("GET", "/api/runs"): Row(ANYONE),
    ("GET", "/api/runs/{run_id}"): Row(P.READ),
    ("GET", "/api/runs/{run_id}/logs"): Row(P.READ),
    ("POST", "/api/runs/{run_id}/cancel"): Row(P.RUN),
    ("GET", "/api/dataclips/{dataclip_id}"): Row(P.READ_BODIES),
    ("POST", "/api/workflows/{workflow_id}/runs"): Row(P.RUN, body=lambda w: {"input": {}}),
    ("GET", "/api/work_orders/{work_order_id}"): Row(P.READ),
    ("POST", "/api/steps/{step_id}/rerun"): Row(P.RUN),
    ("POST", "/api/work_orders/rerun"): Row(
        P.RUN, body=lambda w: {"work_order_ids": [w.ids["work_order_id"]]}
    ),
    # packages: nothing of a project, unless a workflow is named
    ("GET", "/api/adaptors/resolved"): Row(ANYONE, query="adaptor=common"),
    ("POST", "/api/python-packages/resolved"): Row(
        P.READ,
        body=lambda w: {"workflow_id": w.ids["workflow_id"], "jobs": [{"name": "j"}]},
    ),
    # webhook auth
    ("GET", "/api/projects/{project_id}/webhook_auth_methods"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/webhook_auth_methods"): Row(
        P.MANAGE, body=lambda w: {"name": "key", "auth_type": "api"}
    ),
    ("GET", "/api/webhook_auth_methods/{method_id}"): Row(P.READ),
    ("DELETE", "/api/webhook_auth_methods/{method_id}"): Row(
        P.MANAGE, fresh=lambda f: {"method_id": f.method_id}
    ),
    ("GET", "/api/triggers/{trigger_id}/webhook_auth_methods"): Row(P.READ),
    ("PUT", "/api/triggers/{trigger_id}/webhook_auth_methods"): Row(
        P.MANAGE, body=lambda w: {"method_ids": [w.ids["method_id"]]}
    ),
    # members
    ("GET", "/api/projects/{project_id}/members"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/members"): Row(
        P.MEMBERS, body=lambda w: {"email": w.newcomer, "role": "viewer"}
    ),
    ("PUT", "/api/projects/{project_id}/members/{user_id}"): Row(
        P.MEMBERS, body=lambda w: {"role": "editor"}
    ),
    ("DELETE", "/api/projects/{project_id}/members/{user_id}"): Row(
        P.MEMBERS, fresh=lambda f: {"project_id": f.project_id, "user_id": f.member_id}
    ),
    # tokens
    ("GET", "/api/tokens"): Row(USERS),
    ("POST", "/api/tokens"): Row(USERS, body=lambda w: {"name": "mine"}),
    ("DELETE", "/api/tokens/{token_id}"): Row(
        OWNERS_TOKEN, fresh=lambda f: {"token_id": f.owner_token_id}
    ),
    ("GET", "/api/projects/{project_id}/service_tokens"): Row(P.MANAGE),
    ("POST", "/api/projects/{project_id}/service_tokens"): Row(
        P.MANAGE, body=lambda w: {"name": "ci", "role": "viewer"}
    ),
    ("DELETE", "/api/projects/{project_id}/service_tokens/{token_id}"): Row(
        P.MANAGE,
        fresh=lambda f: {"project_id": f.project_id, "token_id": f.service_token_id},
    ),
    # alerts: reading them is a viewer's, rules an editor's, channels and digests an admin's
    ("GET", "/api/projects/{project_id}/alert_channels"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/alert_channels"): Row(
        P.MANAGE, body=lambda w: {"name": "x", "type": "email", "recipients": ["a@b.org"]}
    ),
    ("GET", "/api/projects/{project_id}/alert_channels/{channel_id}"): Row(P.READ),
    ("GET", "/api/projects/{project_id}/alert_channels/{channel_id}/deliveries"): Row(P.READ),
    ("DELETE", "/api/projects/{project_id}/alert_channels/{channel_id}"): Row(P.MANAGE),
    ("GET", "/api/projects/{project_id}/alert_deliveries"): Row(P.READ),
    ("GET", "/api/projects/{project_id}/alerts"): Row(P.READ),
    ("GET", "/api/projects/{project_id}/alert_digest"): Row(P.READ),
    ("PUT", "/api/projects/{project_id}/alert_digest"): Row(
        P.MANAGE, body=lambda w: {"frequency": "off", "channel_ids": []}
    ),
    ("GET", "/api/projects/{project_id}/alert_rules"): Row(P.READ),
    ("GET", "/api/projects/{project_id}/workflows/{workflow_id}/alert_rule"): Row(P.READ),
    ("PUT", "/api/projects/{project_id}/workflows/{workflow_id}/alert_rule"): Row(
        P.EDIT, body=lambda w: {"outcomes": ["failed"], "channel_ids": []}
    ),
    ("DELETE", "/api/projects/{project_id}/workflows/{workflow_id}/alert_rule"): Row(P.EDIT),
    # users and invitations: an instance admin's, but inviting to a project, which is whoever
    # may give the role there (its admins and owners)
    ("GET", "/api/users"): Row(INSTANCE_ADMINS),
    ("PATCH", "/api/users/{user_id}"): Row(INSTANCE_ADMINS, body=lambda w: {}),
    ("POST", "/api/invitations"): Row(
        P.MEMBERS,
        body=lambda w: {
            "email": "invited@example.org",
            "project_id": w.ids["project_id"],
            "role": "viewer",
        },
    ),
    ("GET", "/api/invitations"): Row(INSTANCE_ADMINS),
    ("DELETE", "/api/invitations/{invitation_id}"): Row(INSTANCE_ADMINS),
    # the audit trail: a project's for its admins, the instance's for instance admins
    ("GET", "/api/projects/{project_id}/audit"): Row(P.MANAGE),
    ("GET", "/api/audit"): Row(INSTANCE_ADMINS),
    # collections (their items: /collections/<name>, test_collections_http.py)
    ("GET", "/api/projects/{project_id}/collections"): Row(P.READ),
    ("POST", "/api/projects/{project_id}/collections"): Row(
        P.EDIT, body=lambda w: {"name": f"made-{uuid4().hex[:12]}"}
    ),
    ("GET", "/api/collections/{name}"): Row(P.READ),
    ("DELETE", "/api/collections/{name}"): Row(P.EDIT, fresh=lambda f: {"name": f.collection_name}),
    # the instance
    ("GET", "/api/instance/settings"): Row(INSTANCE_ADMINS),
    ("PUT", "/api/instance/settings"): Row(INSTANCE_ADMINS, body=lambda w: {"require_mfa": False}),
}


def expected(rule: Rule, who: Who) -> Outcome:
    """What ``who`` gets from a route that takes ``rule`` in the team's project (whose
    viewers do not see bodies)."""
    if not isinstance(rule, Permission):
        return rule[who]
    if who == "instance_admin":
        return "allowed"
    if who not in MEMBERS:
        return "not_a_member"
    role = MEMBERS[who]
    return "allowed" if rule in GRANTS[role] else "forbidden"


def outcome(response: httpx2.Response) -> Outcome | str:
    """What an answer says of the check: refused (how), or let through (any other answer:
    the route did its work, or refused for another reason: 409, 422...)."""
    if response.status_code in (403, 404):
        code = response.json().get("error", {}).get("code")
        if code in ("forbidden", "not_a_member"):
            return str(code)
    if response.status_code == 401 or response.status_code >= 500:
        return f"{response.status_code}: {response.text[:200]}"
    return "allowed"


async def _routes(world: World) -> set[tuple[str, str]]:
    document = (await world.http.get("/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


async def test_every_api_route_has_a_row(world: World) -> None:
    routes = await _routes(world)
    assert routes - TABLE.keys() == set(), "routes without a row: say who may use them"
    assert TABLE.keys() - routes == set(), "rows of routes that are gone"


async def test_every_route_for_every_caller(world: World) -> None:
    """The whole table; every wrong cell is listed at once."""
    wrong: list[str] = []
    for (method, path), row in TABLE.items():
        for who in WHO:
            ids = dict(world.ids)
            if row.fresh is not None:
                ids |= row.fresh(await fresh_project(world.store, world.team))
            url = path.format(**ids) + (f"?{row.query}" if row.query else "")
            body = None if row.body is None else row.body(world)
            answer = await world.http.request(
                method, url, json=body, headers=world.team.bearer(who)
            )
            want, got = expected(row.rule, who), outcome(answer)
            if got != want:
                wrong.append(f"{method} {path} as {who}: {want} expected, got {got}")
    assert not wrong, "\n".join(wrong)


# -- what a table cannot say -------------------------------------------------------------------


async def _api(world: World, who: Who, method: str, path: str, body: object = None) -> Any:
    answer = await world.http.request(method, path, json=body, headers=world.team.bearer(who))
    return answer


async def test_a_new_project_is_its_makers_and_listings_are_ones_own(world: World) -> None:
    made = await _api(world, "viewer", "POST", "/api/projects", {"name": "mine"})
    assert made.status_code == 201, made.text
    project_id = made.json()["id"]
    members = (await _api(world, "viewer", "GET", f"/api/projects/{project_id}/members")).json()
    viewer = world.team.users["viewer"]
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [(viewer.id, "owner")]
    listed = (await _api(world, "viewer", "GET", "/api/projects?limit=500")).json()["items"]
    theirs = await world.store.roles_of(viewer.id)
    assert {p["id"] for p in listed} == theirs.keys()
    assert {world.team.project_id, project_id} <= theirs.keys()
    assert world.team.other_project_id not in theirs
    everyone = (await _api(world, "instance_admin", "GET", "/api/projects?limit=500")).json()
    assert {world.team.other_project_id, project_id} <= {p["id"] for p in everyone["items"]}
    runs = (await _api(world, "outsider", "GET", "/api/runs")).json()["items"]
    assert all(run["project_id"] == world.team.other_project_id for run in runs)
    theirs = await _api(world, "outsider", "GET", f"/api/runs?project_id={world.team.project_id}")
    assert theirs.json()["error"]["code"] == "not_a_member"


async def test_a_refusal_names_the_role_it_takes_and_hides_other_projects(world: World) -> None:
    run_id = world.ids["run_id"]
    refused = await _api(world, "viewer", "POST", f"/api/runs/{run_id}/cancel")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        f"you are a viewer of project {world.team.project_id}: starting, cancelling or "
        "retrying runs takes the editor role or a stronger one"
    )
    hidden = await _api(world, "outsider", "GET", f"/api/runs/{run_id}")
    assert hidden.status_code == 404
    message = hidden.json()["error"]["message"]
    assert message == f"run {run_id} does not exist or you are not a member of its project"
    assert world.team.project_id not in message


async def test_viewers_see_bodies_where_the_project_allows_it(world: World) -> None:
    path = f"/api/dataclips/{world.ids['dataclip_id']}"
    assert (await _api(world, "viewer", "GET", path)).status_code == 403
    project = f"/api/projects/{world.team.project_id}"
    allowed = await _api(
        world, "admin", "PUT", project, {"name": "tests", "viewers_see_bodies": True}
    )
    assert allowed.json()["viewers_see_bodies"] is True
    try:
        shown = await _api(world, "viewer", "GET", path)
        assert shown.status_code == 200 and shown.json()["body"] == {"patient": "Ada"}
    finally:
        await _api(world, "admin", "PUT", project, {"name": "tests"})


async def test_only_owners_give_or_take_the_owner_role(world: World) -> None:
    project = world.team.project_id
    target = await user(world.store, "target")
    path = f"/api/projects/{project}/members/{target.id}"
    for body in ({"role": "owner"},):
        refused = await _api(world, "admin", "PUT", path, body)
        assert refused.status_code == 403, refused.text
        assert "giving or taking the owner role" in refused.json()["error"]["message"]
    made = await _api(world, "owner", "PUT", path, {"role": "owner"})
    assert made.status_code == 200 and made.json()["role"] == "owner"
    for method, body in (("PUT", {"role": "viewer"}), ("DELETE", None)):
        refused = await _api(world, "admin", method, path, body)
        assert refused.status_code == 403, refused.text
    assert (await world.store.get_member(project, target.id)).role.value == "owner"
    removed = await _api(world, "owner", "DELETE", path)
    assert removed.status_code == 204


async def test_the_last_owner_stays(world: World) -> None:
    owner = world.team.users["owner"]
    path = f"/api/projects/{world.team.project_id}/members/{owner.id}"
    refused = await _api(world, "owner", "PUT", path, {"role": "admin"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "last_owner"
    refused = await _api(world, "instance_admin", "DELETE", path)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "last_owner"


async def test_members_are_added_by_the_email_of_an_existing_user(world: World) -> None:
    path = f"/api/projects/{world.team.project_id}/members"
    unknown = await _api(
        world, "admin", "POST", path, {"email": "no@example.org", "role": "viewer"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "email"
    person = await user(world.store, "joiner")
    shouted = person.email.upper()
    made = await _api(world, "admin", "POST", path, {"email": shouted, "role": "editor"})
    assert made.status_code == 201 and made.json()["email"] == person.email
    again = await _api(world, "admin", "POST", path, {"email": person.email, "role": "viewer"})
    assert again.status_code == 409


async def test_a_service_token_acts_in_its_project_with_at_most_its_makers_role(
    world: World,
) -> None:
    path = f"/api/projects/{world.team.project_id}/service_tokens"
    refused = await _api(world, "admin", "POST", path, {"name": "ci", "role": "owner"})
    assert refused.status_code == 403
    made = await _api(world, "admin", "POST", path, {"name": "ci", "role": "editor"})
    assert made.status_code == 201, made.text
    doc = made.json()
    assert (doc["kind"], doc["project_id"], doc["role"]) == (
        "service",
        world.team.project_id,
        "editor",
    )
    ci = {"Authorization": f"Bearer {doc['token']}"}
    workflow = f"/api/workflows/{world.ids['workflow_id']}/runs"
    ran = await world.http.post(workflow, json={"input": {}}, headers=ci)
    assert ran.status_code == 201, ran.text
    other = f"/api/projects/{world.team.other_project_id}"
    assert (await world.http.get(other, headers=ci)).json()["error"]["code"] == "not_a_member"
    no_manage = await world.http.get(path, headers=ci)
    assert no_manage.status_code == 403
    listed = (await _api(world, "admin", "GET", path)).json()["items"]
    assert doc["id"] in {t["id"] for t in listed} and "token" not in listed[0]
    revoked = await _api(world, "admin", "DELETE", f"{path}/{doc['id']}")
    assert revoked.status_code == 204
    assert (await world.http.post(workflow, json={"input": {}}, headers=ci)).status_code == 401


async def test_personal_tokens_are_their_users_own(world: World) -> None:
    made = await _api(world, "editor", "POST", "/api/tokens", {"name": "script"})
    assert made.status_code == 201
    doc = made.json()
    assert (doc["kind"], doc["user_id"]) == ("personal", world.team.users["editor"].id)
    script = {"Authorization": f"Bearer {doc['token']}"}
    assert (await world.http.get("/api/projects", headers=script)).status_code == 200
    mine = (await _api(world, "editor", "GET", "/api/tokens")).json()["items"]
    assert {t["user_id"] for t in mine} == {world.team.users["editor"].id}
    assert {"editor's laptop", "script"} <= {t["name"] for t in mine}
    everyone = (await _api(world, "instance_admin", "GET", "/api/tokens")).json()["items"]
    assert {t["id"] for t in mine} < {t["id"] for t in everyone}
    refused = await _api(world, "viewer", "DELETE", f"/api/tokens/{doc['id']}")
    assert refused.status_code == 403
    assert (await _api(world, "editor", "DELETE", f"/api/tokens/{doc['id']}")).status_code == 204
    assert (await world.http.get("/api/projects", headers=script)).status_code == 401
