"""Who may post what on the dashboard (issue 18), on a real coordinator over loopback: every
POST form of the app's routes under ``/ui``, tried by each kind of caller signed in (a
project's owner, admin, editor and viewer, a user who is not a member, another project's
service token, an instance admin). A refused post is answered with the 403 page (``forbidden``)
or 404 (``not_a_member``) and changes nothing in the store; an allowed one gets past the
check. A form the table does not list fails the test.

Then the pages: a viewer's show no control it cannot use, and lists show only one's projects.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from uuid import uuid4

import httpx2
import pytest
from fastapi.routing import APIRoute

from fulmen.coordinator.access import GRANTS, Permission
from fulmen.coordinator.api.auth import parse
from fulmen.store import (
    ChannelType,
    DataclipType,
    EnqueueRequest,
    NewAlertChannel,
    NewDataclip,
    NewWebhookAuthMethod,
    RunFilter,
    SQLStore,
    WebhookAuthType,
)
from fulmen_testing.coordinator import seed, serve, sqlite_store
from fulmen_testing.teams import (
    COOKIE,
    MEMBERS,
    WHO,
    Fresh,
    Team,
    Who,
    fresh_project,
    sign_in,
    team,
    user,
)

pytestmark = pytest.mark.anyio

P = Permission
Outcome = Literal["allowed", "forbidden", "not_a_member", "exempt"]
Rule = Permission | Mapping[Who, Outcome]

USERS: Final[Mapping[Who, Outcome]] = {**dict.fromkeys(WHO, "allowed"), "service": "forbidden"}
OWNERS_TOKEN: Final[Mapping[Who, Outcome]] = {
    **dict.fromkeys(WHO, "forbidden"),
    "owner": "allowed",
    "instance_admin": "allowed",
}
#: The runner's smart workers belong to no project: the instance's admins' alone.
INSTANCE: Final[Mapping[Who, Outcome]] = {
    **dict.fromkeys(WHO, "forbidden"),
    "instance_admin": "allowed",
}
#: Signing in and out, and one's own account, are not a role's business.
SIGN_IN: Final[Mapping[Who, Outcome]] = dict.fromkeys(WHO, "exempt")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Board:
    store: SQLStore
    base_url: str
    routes: set[str]
    team: Team
    ids: dict[str, str] = field(default_factory=dict)
    newcomer: str = ""
    #: Each caller's session cookie.
    cookies: dict[Who, str] = field(default_factory=dict)

    def client(self, who: Who) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            base_url=self.base_url,
            cookies={COOKIE: self.cookies[who]},
            headers={"Origin": self.base_url},
        )


def _post_routes(routes: Iterable[Any]) -> Iterator[str]:
    """The paths of the POST routes among ``routes``, through included routers (which
    FastAPI keeps as they were included)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if "POST" in route.methods:
                yield route.path
        elif hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                if hasattr(candidate, "effective_candidates"):
                    yield from _post_routes([candidate])
                elif "POST" in (getattr(candidate, "methods", None) or ()):
                    yield candidate.path


@pytest.fixture(scope="module")
async def board(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Board]:
    path = tmp_path_factory.mktemp("roles") / "fulmen.db"
    async with sqlite_store(str(path)) as store, serve(store) as served:
        assert served.app is not None
        routes = {p for p in _post_routes(served.app.routes) if p.startswith("/ui")}
        people = await team(store)
        seeded = people.seeded
        method = await store.create_webhook_auth_method(
            NewWebhookAuthMethod(str(uuid4()), seeded.project_id, "m", WebhookAuthType.API)
        )
        body = NewDataclip(DataclipType.SAVED_INPUT, {"patient": "Ada"})
        run = await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id, input=body))
        channel = await store.create_alert_channel(
            NewAlertChannel(str(uuid4()), seeded.project_id, "mail", ChannelType.EMAIL, ("a@b.c",))
        )
        made = Board(
            store,
            served.base_url,
            routes,
            people,
            {
                "project_id": seeded.project_id,
                "workflow_id": seeded.workflow_id,
                "trigger_id": seeded.webhook_id,
                "credential_id": seeded.credential_id,
                "method_id": method.id,
                "run_id": run.run_id,
                "work_order_id": run.work_order_id,
                "user_id": (await user(store, "promoted")).id,
                "ref": "some-worker",
                "channel_id": channel.id,
                "invitation_id": "0" * 64,
                "name": (await store.create_collection(seeded.project_id, "board")).name,
            },
            (await user(store, "newcomer")).email,
        )
        for who in WHO:
            if who == "service":
                parts = parse(people.tokens[who])
                assert parts is not None
                made.cookies[who] = await sign_in(store, token_id=parts[0])
            else:
                made.cookies[who] = await sign_in(store, user_id=people.users[who].id)
        yield made


@dataclass(frozen=True)
class Row:
    rule: Rule
    form: Callable[[Board], dict[str, str]] = lambda board: {}
    fresh: Callable[[Fresh], dict[str, str]] | None = None


#: Every POST under /ui: its path as the app writes it → its row.
TABLE: Final[dict[str, Row]] = {
    "/ui/login": Row(SIGN_IN),
    "/ui/logout": Row(SIGN_IN),
    "/ui/runs/{run_id}/retry": Row(P.RUN),
    "/ui/runs/{run_id}/cancel": Row(P.RUN),
    "/ui/runs/rerun": Row(P.RUN, form=lambda b: {"work_order_id": b.ids["work_order_id"]}),
    "/ui/workflows/{workflow_id}/run": Row(P.RUN, form=lambda b: {"input": "{}"}),
    "/ui/projects/{project_id}/workflows/new": Row(P.EDIT),
    "/ui/workflows/{workflow_id}/edit": Row(P.EDIT),
    "/ui/credentials/{project_id}": Row(
        P.MANAGE, form=lambda b: {"name": "new", "body": '{"key": "a-long-value"}'}
    ),
    "/ui/credentials/{project_id}/{credential_id}/value": Row(
        P.MANAGE, form=lambda b: {"body": '{"user": "alice", "password": "s3cr3t-pw"}'}
    ),
    "/ui/credentials/{project_id}/{credential_id}/delete": Row(
        P.MANAGE,
        fresh=lambda f: {"project_id": f.project_id, "credential_id": f.credential_id},
    ),
    "/ui/triggers/{trigger_id}/enabled": Row(
        P.EDIT, form=lambda b: {"enabled": "true", "version": "1"}
    ),
    "/ui/triggers/{trigger_id}/auth": Row(
        P.MANAGE, form=lambda b: {"method_id": b.ids["method_id"]}
    ),
    "/ui/triggers/{trigger_id}/auth/{method_id}/detach": Row(P.MANAGE),
    "/ui/triggers/{trigger_id}/auth/new": Row(
        P.MANAGE, form=lambda b: {"name": "key", "auth_type": "api"}
    ),
    "/ui/settings/projects/{project_id}": Row(P.MANAGE, form=lambda b: {"name": "tests"}),
    "/ui/settings/workflows/{workflow_id}/retry": Row(
        P.EDIT, form=lambda b: {"version": "1", "max_retries": "1"}
    ),
    "/ui/tokens": Row(USERS, form=lambda b: {"name": "mine"}),
    "/ui/tokens/projects/{project_id}": Row(
        P.MANAGE, form=lambda b: {"name": "ci", "role": "viewer"}
    ),
    "/ui/tokens/{token_id}/revoke": Row(
        OWNERS_TOKEN, fresh=lambda f: {"token_id": f.owner_token_id}
    ),
    "/ui/smart-workers/{ref}/run": Row(INSTANCE),
    "/ui/smart-workers/{ref}/restart": Row(INSTANCE),
    "/ui/smart-workers/{ref}/delete": Row(INSTANCE, form=lambda b: {"confirm": "yes"}),
    "/ui/projects/{project_id}/members": Row(
        P.MEMBERS, form=lambda b: {"email": b.newcomer, "role": "viewer"}
    ),
    "/ui/projects/{project_id}/members/{user_id}/role": Row(
        P.MEMBERS, form=lambda b: {"role": "editor"}
    ),
    "/ui/projects/{project_id}/members/{user_id}/remove": Row(
        P.MEMBERS, fresh=lambda f: {"project_id": f.project_id, "user_id": f.member_id}
    ),
    # alerts: channels and the digest an admin's, a workflow's rule an editor's
    "/ui/alerts/projects/{project_id}/channels": Row(
        P.MANAGE, form=lambda b: {"name": "ops", "type": "email", "recipients": "o@x.org"}
    ),
    "/ui/alerts/projects/{project_id}/channels/{channel_id}/delete": Row(P.MANAGE),
    "/ui/alerts/projects/{project_id}/digest": Row(P.MANAGE, form=lambda b: {"frequency": "off"}),
    "/ui/alerts/projects/{project_id}/workflows/{workflow_id}/rule": Row(
        P.EDIT, form=lambda b: {"outcomes": "failed", "enabled": "1"}
    ),
    "/ui/alerts/projects/{project_id}/workflows/{workflow_id}/rule/delete": Row(P.EDIT),
    # collections (issue 19): an editor's, as through the API
    "/ui/collections/{project_id}": Row(P.EDIT, form=lambda b: {"name": f"c-{uuid4().hex[:12]}"}),
    "/ui/collections/{name}/delete": Row(
        P.EDIT, fresh=lambda f: {"name": f.collection_name, "project_id": f.project_id}
    ),
    "/ui/collections/{name}/items/delete": Row(P.EDIT, form=lambda b: {"key": "k"}),
    # one's own second factor (no role's business: test_second_factor_http.py), its sign-in,
    # and the instance's settings
    "/ui/account/mfa": Row(SIGN_IN),
    "/ui/account/mfa/codes": Row(SIGN_IN),
    "/ui/account/mfa/off": Row(SIGN_IN),
    "/ui/login/mfa": Row(SIGN_IN),
    "/ui/instance": Row(INSTANCE),
    # issue 18's people: one's own account, an invitation's link (whoever holds it), the
    # users page (an instance admin's), inviting (whoever may give the role there)
    "/ui/account/password": Row(SIGN_IN),
    "/ui/invitations/{secret}": Row(SIGN_IN),
    "/ui/users/{user_id}": Row(INSTANCE, form=lambda b: {"action": "enable"}),
    "/ui/invitations/{invitation_id}/revoke": Row(INSTANCE),
    "/ui/invitations": Row(
        P.MEMBERS,
        form=lambda b: {
            "email": "invited@example.org",
            "project_id": b.ids["project_id"],
            "role": "viewer",
        },
    ),
}


def expected(rule: Rule, who: Who) -> Outcome:
    if not isinstance(rule, Permission):
        return rule[who]
    if who == "instance_admin":
        return "allowed"
    if who not in MEMBERS:
        return "not_a_member"
    return "allowed" if rule in GRANTS[MEMBERS[who]] else "forbidden"


def outcome(response: httpx2.Response) -> str:
    """What a page says of the check: the refusal page names its code."""
    found = re.search(r'id="forbidden" data-code="([a-z_]+)"', response.text)
    if found and response.status_code in (403, 404):
        return found.group(1)
    if response.status_code == 401 or response.status_code >= 500:
        return f"{response.status_code}: {response.text[:200]}"
    return "allowed"


async def state(store: SQLStore, ids: Mapping[str, str]) -> object:
    """What a post could change, of the project it names and of the instance."""
    project_id = ids["project_id"]
    workflows = await store.list_workflows(project_id)
    return (
        await store.get_project(project_id),
        [(w.workflow, w.version) for w in workflows.items],
        [(c.id, c.name, c.updated_at) for c in await store.list_credentials(project_id)],
        [m.id for m in await store.list_webhook_auth_methods(project_id)],
        [m.id for m in await store.list_trigger_auth_methods(ids["trigger_id"])],
        [(m.user_id, m.role) for m in await store.list_members(project_id)],
        [t.id for t in await store.list_api_tokens()],
        [(r.id, r.state) for r in (await store.list_runs(RunFilter(), limit=1000)).items],
        [c.id for c in await store.list_alert_channels(project_id)],
        await store.list_alert_rules(project_id),
        await store.get_alert_digest(project_id),
        await store.get_instance_settings(),
        [(c.name, c.item_count) for c in (await store.list_collections(project_id)).items],
    )


async def test_every_form_has_a_row(board: Board) -> None:
    assert board.routes - TABLE.keys() == set(), "forms without a row: say who may post them"
    assert TABLE.keys() - board.routes == set(), "rows of forms that are gone"


async def test_every_form_for_every_caller(board: Board) -> None:
    """The whole table: a refused post answers 403/404 and changes nothing."""
    wrong: list[str] = []
    for path, row in TABLE.items():
        for who in WHO:
            want = expected(row.rule, who)
            if want == "exempt":
                continue
            ids = dict(board.ids)
            if row.fresh is not None:
                ids |= row.fresh(await fresh_project(board.store, board.team))
            before = await state(board.store, ids) if want != "allowed" else None
            async with board.client(who) as http:
                answer = await http.post(path.format(**ids), data=row.form(board))
            got = outcome(answer)
            if got != want:
                wrong.append(f"POST {path} as {who}: {want} expected, got {got}")
            elif before is not None and await state(board.store, ids) != before:
                wrong.append(f"POST {path} as {who}: refused, and yet something changed")
    assert not wrong, "\n".join(wrong)


# -- the pages ---------------------------------------------------------------------------------


async def _page(board: Board, who: Who, path: str) -> httpx2.Response:
    async with board.client(who) as http:
        return await http.get(path)


async def test_a_viewer_sees_a_workflow_and_no_control(board: Board) -> None:
    workflow_id, project_id = board.ids["workflow_id"], board.ids["project_id"]
    pages = {
        "workflow": f"/ui/workflows/{workflow_id}",
        "workflows": "/ui",
        "run": f"/ui/runs/{board.ids['run_id']}",
        "trigger": f"/ui/triggers/{board.ids['trigger_id']}",
        "credentials": "/ui/credentials",
        "settings": "/ui/settings",
        "members": f"/ui/projects/{project_id}/members",
        "runs": "/ui/runs",
    }
    for name, path in pages.items():
        page = await _page(board, "viewer", path)
        assert page.status_code == 200, (name, page.text[:300])
        posts = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert posts == ["/ui/logout"], (name, posts)
        assert f"/workflows/{workflow_id}/edit" not in page.text, name
        assert f'/workflows/{workflow_id}/run"' not in page.text, name
        assert "/dataclips/" not in page.text, name
        assert "/smart-workers" not in page.text, name
    editor = await _page(board, "editor", f"/ui/workflows/{workflow_id}")
    assert f'href="/ui/workflows/{workflow_id}/edit"' in editor.text
    queued = await board.store.enqueue(
        EnqueueRequest(workflow_id, input=NewDataclip(DataclipType.SAVED_INPUT, {"a": 1}))
    )
    for who, shown in (("editor", True), ("viewer", False)):
        run = await _page(board, who, f"/ui/runs/{queued.run_id}")
        assert ("/dataclips/" in run.text) is shown, who
        assert (f"/runs/{queued.run_id}/cancel" in run.text) is shown, who


async def test_a_viewer_is_refused_the_forms_pages(board: Board) -> None:
    workflow_id = board.ids["workflow_id"]
    for path in (f"/ui/workflows/{workflow_id}/edit", f"/ui/workflows/{workflow_id}/run"):
        refused = await _page(board, "viewer", path)
        assert refused.status_code == 403 and 'data-code="forbidden"' in refused.text
        assert "You are a viewer of project" in refused.text
    hidden = await _page(board, "outsider", f"/ui/workflows/{workflow_id}")
    assert hidden.status_code == 404 and 'data-code="not_a_member"' in hidden.text
    assert board.ids["project_id"] not in hidden.text
    fragment = await _page(board, "viewer", f"/ui/dataclips/{uuid4()}")
    assert fragment.status_code == 200  # an unknown dataclip: the fragment says it is gone
    smart = await _page(board, "admin", "/ui/smart-workers")
    assert smart.status_code == 403


async def test_lists_and_exports_show_only_ones_projects(board: Board) -> None:
    theirs = await board.store.enqueue(EnqueueRequest(workflow_id=(await _other_workflow(board))))
    for path in ("/ui", "/ui/runs", "/ui/runs/rows", "/ui/runs.csv", "/ui/runs.json"):
        seen = (await _page(board, "outsider", path)).text
        assert theirs.run_id[:8] in seen or path == "/ui", path
        assert board.ids["run_id"][:8] not in seen, path
        mine = (await _page(board, "viewer", path)).text
        assert theirs.run_id[:8] not in mine, path
    home = (await _page(board, "outsider", "/ui")).text
    assert "another team&#39;s" in home and board.ids["project_id"] not in home


async def _other_workflow(board: Board) -> str:
    seeded = await seed(board.store)
    await board.store.put_member(
        seeded.project_id, board.team.users["outsider"].id, MEMBERS["owner"]
    )
    return seeded.workflow_id


async def test_a_viewer_searching_bodies_finds_nothing_hidden(board: Board) -> None:
    """The run's input holds "Ada": its editor finds it by that word, its viewer does not
    (bodies are not theirs to read), unless the project lets viewers see them."""
    for who, found in (("editor", True), ("viewer", False)):
        page = (await _page(board, who, "/ui/runs?q=Ada")).text
        assert (board.ids["run_id"][:8] in page) is found, who
    project = await board.store.get_project(board.ids["project_id"])
    await board.store.replace_project(replace(project, viewers_see_bodies=True))
    try:
        page = (await _page(board, "viewer", "/ui/runs?q=Ada")).text
        assert board.ids["run_id"][:8] in page
    finally:
        await board.store.replace_project(project)


async def test_the_members_page_offers_only_the_roles_one_may_give(board: Board) -> None:
    path = f"/ui/projects/{board.ids['project_id']}/members"

    def offered(html: str) -> set[str]:
        form = html.split('data-form="add"')[1].split("</form>")[0]
        return set(re.findall(r'<option value="([a-z]+)"', form))

    assert offered((await _page(board, "admin", path)).text) == {"viewer", "editor", "admin"}
    owner = (await _page(board, "owner", path)).text
    assert offered(owner) == {"viewer", "editor", "admin", "owner"}
    admin = (await _page(board, "admin", path)).text
    owner_id = board.team.users["owner"].id
    assert f"/members/{owner_id}/remove" not in admin  # an admin cannot remove an owner
    assert f"/members/{owner_id}/remove" in owner
    person = await user(board.store, "added")
    async with board.client("admin") as http:
        answer = await http.post(path, data={"email": person.email, "role": "editor"})
    assert answer.status_code == 303
    assert person.email in (await _page(board, "admin", path)).text
    assert (await board.store.get_member(board.ids["project_id"], person.id)).role.value == "editor"
