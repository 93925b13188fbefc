"""``POST /api/deployments`` (issue 21) on a real coordinator over loopback: a project's whole
desired state written at once, each part answered and recorded as its own route records it;
a refused part named, with nothing written; and who may deploy what (each part as its own
route checks it; test_roles_api.py holds its row of the table)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx2
import pytest

from fulmen.store import SQLStore
from fulmen_testing.coordinator import serve, sqlite_store
from fulmen_testing.npm_registry import npm_registry
from fulmen_testing.teams import Team, Who, team

pytestmark = pytest.mark.anyio

#: What changes with every save and says nothing of the change (coordinator/audit.py).
VOLATILE = ("inserted_at", "updated_at", "snapshot_id")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    store: SQLStore
    http: httpx2.AsyncClient
    team: Team

    async def call(
        self, who: Who, method: str, path: str, body: object = None, **params: str
    ) -> httpx2.Response:
        headers = self.team.bearer(who)
        return await self.http.request(method, path, json=body, params=params, headers=headers)

    async def deploy(self, who: Who, body: dict[str, Any]) -> httpx2.Response:
        return await self.call(who, "POST", "/api/deployments", body)

    async def get(self, path: str, **params: str) -> Any:
        answer = await self.call("instance_admin", "GET", path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def trail(self, project_id: str) -> list[dict[str, Any]]:
        """The project's audit records, oldest first; refusals left out."""
        page = await self.get(f"/api/projects/{project_id}/audit", limit="500")
        return [r for r in reversed(page["items"]) if r["action"] != "access.refused"]


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[World]:
    with npm_registry() as registry:
        async with (
            sqlite_store(str(tmp_path / "fulmen.db")) as store,
            serve(store, npm_registry=registry.url) as served,
            httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
        ):
            yield World(store, http, await team(store))


def a_workflow(name: str, *, job: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """A workflow document: a webhook, then one Python job (``job`` changes it)."""
    job_id, hook = str(uuid4()), str(uuid4())
    only = {"id": job_id, "name": "only", "body": "fn(lambda s: s)", "adaptor": "common"}
    return {
        "id": str(uuid4()),
        "name": name,
        "jobs": [{**only, **(job or {})}],
        "triggers": [{"id": hook, "type": "webhook"}],
        "edges": [{"id": str(uuid4()), "source_trigger_id": hook, "target_job_id": job_id}],
        **more,
    }


def editable(document: dict[str, Any]) -> dict[str, Any]:
    """What a save takes of what a GET answered."""
    keys = ("id", "name", "concurrency", "retry", "jobs", "triggers", "edges")
    return {key: document[key] for key in keys}


def shown(document: dict[str, Any]) -> dict[str, Any]:
    """A document as the audit trail keeps it."""
    return {k: v for k, v in document.items() if k not in VOLATILE}


async def test_each_part_is_answered_and_recorded_as_its_own_route_records_it(
    world: World,
) -> None:
    credential_id = str(uuid4())
    first = a_workflow("intake", job={"credential_id": credential_id})
    second = a_workflow("nightly", triggers=[], edges=[])
    third = a_workflow("old")
    made = await world.deploy(
        "owner",
        {
            "project": {"name": "clinic"},
            "credentials": [{"name": "api", "id": credential_id}],
            "workflows": [first, second, third],
        },
    )
    assert made.status_code == 200, made.text
    answer = made.json()
    project_id = answer["project"]["id"]
    assert answer["project"] == {"id": project_id, "name": "clinic", "change": "created"}
    assert answer["credentials"] == [{"id": credential_id, "name": "api", "change": "created"}]
    assert [(w["name"], w["change"], w["version"], w["webhooks"]) for w in answer["workflows"]] == [
        ("intake", "created", 1, [first["triggers"][0]["id"]]),
        ("nightly", "created", 1, []),
        ("old", "created", 1, [third["triggers"][0]["id"]]),
    ]
    members = await world.get(f"/api/projects/{project_id}/members")
    owner = world.team.users["owner"]
    assert [(m["user_id"], m["role"]) for m in members["items"]] == [(owner.id, "owner")]

    records = await world.trail(project_id)
    assert [(r["action"], r["target"]["name"]) for r in records] == [
        ("project.created", "clinic"),
        ("credential.created", "api"),
        ("workflow.created", "intake"),
        ("workflow.created", "nightly"),
        ("workflow.created", "old"),
    ]
    assert {r["actor"]["id"] for r in records} == {owner.id}
    project = await world.get(f"/api/projects/{project_id}")
    assert records[0]["after"] == shown(project)
    assert (records[1]["after"], records[1]["detail"]) == (
        {"id": credential_id, "project_id": project_id, "name": "api", "used_by": []},
        {"value": "set"},
    )
    intake = await world.get(f"/api/workflows/{first['id']}")
    assert records[2]["after"] == shown(intake)

    # again: renamed, one workflow as it was, one edited, one deleted
    edited = editable(await world.get(f"/api/workflows/{second['id']}"))
    edited["jobs"][0]["body"] = "fn(lambda s: {**s, 'n': 1})"
    again = await world.deploy(
        "owner",
        {
            "project": {"id": project_id, "name": "clinic (north)"},
            "credentials": [{"name": "api"}],
            "workflows": [
                {**editable(intake), "expected_version": 1},
                {**edited, "expected_version": 1},
            ],
            "deletions": [third["id"]],
        },
    )
    assert again.status_code == 200, again.text
    answer = again.json()
    assert answer["project"]["change"] == "updated"
    assert answer["credentials"] == [{"id": credential_id, "name": "api", "change": "unchanged"}]
    assert [(w["name"], w["change"], w["version"]) for w in answer["workflows"]] == [
        ("intake", "unchanged", 1),
        ("nightly", "updated", 2),
        ("old", "deleted", None),
    ]
    later = (await world.trail(project_id))[len(records) :]
    assert [(r["action"], r["target"]["name"]) for r in later] == [
        ("project.updated", "clinic (north)"),
        ("workflow.updated", "nightly"),
        ("workflow.deleted", "old"),
    ]
    assert (later[1]["before"]["version"], later[1]["after"]["version"]) == (1, 2)
    assert later[2]["before"]["name"] == "old" and later[2]["after"] is None


# -- a refusal names the part at fault and writes nothing --------------------------------------


async def test_a_stale_second_workflow_writes_nothing(world: World) -> None:
    seeded = world.team.seeded
    chain = editable(await world.get(f"/api/workflows/{seeded.workflow_id}"))
    before = await world.trail(seeded.project_id)
    refused = await world.deploy(
        "admin",
        {
            "project": {"id": seeded.project_id, "name": "renamed"},
            "credentials": [{"name": "api"}, {"name": "sms"}],
            "workflows": [a_workflow("first"), {**chain, "name": "mine", "expected_version": 7}],
        },
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == {
        "code": "stale_version",
        "message": f"workflow 'mine': workflow {seeded.workflow_id} was saved by someone else: "
        "it is at version 1, this save was based on version 7",
        "field": "workflows[1].expected_version",
    }
    assert (await world.get(f"/api/projects/{seeded.project_id}"))["name"] == "tests"
    credentials = await world.get(f"/api/projects/{seeded.project_id}/credentials")
    assert [c["name"] for c in credentials["items"]] == ["api"]
    workflows = await world.get(f"/api/projects/{seeded.project_id}/workflows")
    assert [(w["name"], w["version"]) for w in workflows["items"]] == [("chain", 1)]
    assert await world.trail(seeded.project_id) == before


def _cycle() -> dict[str, Any]:
    document = a_workflow("broken")
    job = document["jobs"][0]
    other = {**job, "id": str(uuid4()), "name": "other"}
    document["jobs"].append(other)
    document["edges"] += [
        {"id": str(uuid4()), "source_job_id": job["id"], "target_job_id": other["id"]},
        {"id": str(uuid4()), "source_job_id": other["id"], "target_job_id": job["id"]},
    ]
    return document


@pytest.mark.parametrize(
    ("second", "status", "field", "says"),
    [
        (_cycle(), 422, "workflows[1]", "workflow 'broken': the workflow has a cycle: "),
        (
            a_workflow("sync", job={"adaptor": "@openfn/language-nope@1", "body": "fn(s => s);"}),
            422,
            "workflows[1]",
            "workflow 'sync': job 'only' (",
        ),
        (
            a_workflow("nightly", triggers=[{"type": "cron", "cron_expression": "at noon"}]),
            422,
            "workflows[1].triggers[0].cron_expression",
            "workflow 'nightly': ",
        ),
        (
            a_workflow("uses", job={"credential_id": "nowhere"}),
            404,
            "workflows[1].jobs[0].credential_id",
            "workflow 'uses': credential nowhere is not a credential of the project",
        ),
        (
            a_workflow("twice", jobs=[]),
            422,
            None,
            "",
        ),
    ],
    ids=["a cycle", "an adaptor the registry lacks", "a schedule", "a credential", "no job"],
)
async def test_a_refused_second_workflow_makes_no_project(
    world: World, second: dict[str, Any], status: int, field: str | None, says: str
) -> None:
    refused = await world.deploy(
        "owner",
        {
            "project": {"name": "fresh"},
            "credentials": [{"name": "api"}],
            "workflows": [a_workflow("fine"), second],
        },
    )
    assert refused.status_code == status, refused.text
    if field is not None:  # else pydantic's own 422, before anything is looked at
        error = refused.json()["error"]
        assert error["field"].startswith(field) and error["message"].startswith(says), error
    listed = await world.get("/api/projects", limit="500")
    assert "fresh" not in [p["name"] for p in listed["items"]]


async def test_a_part_asked_for_twice_is_refused(world: World) -> None:
    document = a_workflow("once")
    refused = await world.deploy(
        "owner", {"project": {"name": "twice"}, "workflows": [document, document]}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "workflows[1].id"


# -- who may deploy what -----------------------------------------------------------------------


async def test_each_part_takes_the_role_its_own_route_takes(world: World) -> None:
    seeded = world.team.seeded
    project = {"id": seeded.project_id, "name": "tests"}

    def workflow_only(name: str) -> dict[str, Any]:
        return {"project": project, "workflows": [a_workflow(name)]}

    assert (await world.deploy("editor", workflow_only("by an editor"))).status_code == 200
    for body in (
        {**workflow_only("x"), "project": {**project, "name": "renamed"}},  # settings: an admin's
        {**workflow_only("x"), "credentials": [{"name": "new one"}]},  # credentials: an admin's
    ):
        refused = await world.deploy("editor", body)
        assert refused.status_code == 403, refused.text
        assert "takes the admin role" in refused.json()["error"]["message"]
    assert (await world.deploy("viewer", workflow_only("x"))).status_code == 403
    by_an_admin = {**workflow_only("by an admin"), "credentials": [{"name": "new one"}]}
    assert (await world.deploy("admin", by_an_admin)).status_code == 200

    listed = await world.get(f"/api/projects/{seeded.project_id}/workflows")
    assert sorted(w["name"] for w in listed["items"]) == ["by an admin", "by an editor", "chain"]
    assert (await world.get(f"/api/projects/{seeded.project_id}"))["name"] == "tests"

    hidden = await world.deploy("outsider", workflow_only("x"))
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_a_member"
    service = await world.deploy("service", {"project": {"name": "theirs"}})
    assert service.status_code == 403
    assert "cannot create projects" in service.json()["error"]["message"]


async def test_a_workflow_of_another_project_is_neither_replaced_nor_deleted(
    world: World,
) -> None:
    seeded = world.team.seeded
    theirs = await world.deploy(
        "outsider", {"project": {"name": "theirs"}, "workflows": [a_workflow("x")]}
    )
    assert theirs.status_code == 200, theirs.text
    their_workflow = theirs.json()["workflows"][0]["id"]
    project = {"id": seeded.project_id, "name": "tests"}
    hidden = await world.deploy("editor", {"project": project, "deletions": [their_workflow]})
    assert hidden.status_code == 404
    assert hidden.json()["error"]["message"] == (
        f"workflow {their_workflow} does not exist or you are not a member of its project"
    )

    # an instance admin may change both projects, but a deployment changes only its own
    moved = await world.deploy(
        "instance_admin",
        {"project": project, "workflows": [a_workflow("moved", id=their_workflow)]},
    )
    assert moved.status_code == 409 and moved.json()["error"]["field"] == "workflows[0].id"
    deleted = await world.deploy(
        "instance_admin", {"project": project, "deletions": [their_workflow]}
    )
    assert deleted.status_code == 409 and deleted.json()["error"]["field"] == "deletions[0]"
    assert (await world.get(f"/api/workflows/{their_workflow}"))["version"] == 1


async def test_a_project_is_found_by_name_among_the_callers_own(world: World) -> None:
    """The outsider's "tests" is a new project of theirs, not the team's of that name."""
    mine = await world.deploy("outsider", {"project": {"name": "tests"}})
    assert mine.status_code == 200 and mine.json()["project"]["change"] == "created"
    assert mine.json()["project"]["id"] != world.team.project_id
    again = await world.deploy("outsider", {"project": {"name": "tests"}})
    assert again.json()["project"] == {**mine.json()["project"], "change": "unchanged"}
    ambiguous = await world.deploy("instance_admin", {"project": {"name": "tests"}})
    assert ambiguous.status_code == 422
    assert ambiguous.json()["error"] == {
        "code": "ambiguous",
        "message": "2 of your projects are named 'tests': give the id of one",
        "field": "project.name",
    }
