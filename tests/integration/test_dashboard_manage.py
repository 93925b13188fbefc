"""The dashboard's management pages over HTTP, on a real coordinator: credentials, triggers,
project settings and API tokens. What a user notices: a bad form is answered 4xx with the
field named, never 500; nothing changes without signing in or from another site; a
credential's value is never on any page; a revoked token is refused by the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx2
import pytest

from fulmen.store import SQLStore
from fulmen_testing.coordinator import Seeded, api_token, seed, serve, sqlite_store

pytestmark = pytest.mark.anyio

SEEDED_SECRET = "s3cr3t-pw"  # the seeded credential's password
NEW_SECRET = "brand-new-secret-value-1234"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Dashboard:
    store: SQLStore
    seeded: Seeded
    http: httpx2.AsyncClient
    token: str

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": str(self.http.base_url).rstrip("/")}

    async def sign_in(self) -> None:
        signed = await self.http.post("/ui/login", data={"token": self.token}, headers=self.origin)
        assert signed.status_code == 303, signed.text

    async def post(self, path: str, data: dict[str, str]) -> httpx2.Response:
        return await self.http.post(path, data=data, headers=self.origin)

    async def api(self, method: str, path: str, **kwargs: object) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return await self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store, serve(store) as served:
        seeded = await seed(store, cron="30 9 * * 1-5", timezone="Europe/Paris")
        async with httpx2.AsyncClient(base_url=served.base_url) as http:
            board = Dashboard(store, seeded, http, await api_token(store))
            await board.sign_in()
            yield board


def text_of(html: str) -> str:
    """A page's text, tags removed: what a reader sees."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def field_error(html: str) -> list[str]:
    return [text_of(m).strip() for m in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', html)]


# -- signing in and same-origin ----------------------------------------------------------------

PAGES = ["/ui/credentials", "/ui/settings", "/ui/tokens"]


async def test_the_pages_need_a_sign_in_and_posts_need_a_session(dashboard: Dashboard) -> None:
    trigger = f"/ui/triggers/{dashboard.seeded.webhook_id}"
    async with httpx2.AsyncClient(base_url=dashboard.http.base_url) as stranger:
        for path in [*PAGES, trigger]:
            answer = await stranger.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/ui/login?next=")
        posted = await stranger.post(
            f"/ui/credentials/{dashboard.seeded.project_id}",
            data={"name": "x", "body": "{}"},
            headers=dashboard.origin,
        )
        assert posted.status_code == 401
        posted = await stranger.post("/ui/tokens", data={"name": "x"}, headers=dashboard.origin)
        assert posted.status_code == 401
    assert len(await dashboard.store.list_credentials(dashboard.seeded.project_id)) == 1
    assert len(await dashboard.store.list_api_tokens()) == 1


async def test_posts_from_another_site_change_nothing(dashboard: Dashboard) -> None:
    other = {"Origin": "https://evil.example"}
    s = dashboard.seeded
    attempts = [
        (f"/ui/credentials/{s.project_id}", {"name": "x", "body": "{}"}),
        (f"/ui/credentials/{s.project_id}/{s.credential_id}/value", {"body": '{"a": 1}'}),
        (f"/ui/credentials/{s.project_id}/{s.credential_id}/delete", {}),
        (f"/ui/triggers/{s.webhook_id}/enabled", {"enabled": "false", "version": "1"}),
        (f"/ui/triggers/{s.webhook_id}/auth/new", {"name": "k", "auth_type": "api"}),
        (f"/ui/settings/projects/{s.project_id}", {"name": "renamed"}),
        (f"/ui/settings/workflows/{s.workflow_id}/retry", {"version": "1", "max_retries": "3"}),
        ("/ui/tokens", {"name": "x"}),
    ]
    for path, data in attempts:
        answer = await dashboard.http.post(path, data=data, headers=other)
        assert answer.status_code == 403, path
        assert "posted from another site" in text_of(answer.text)
    assert (await dashboard.store.get_project(s.project_id)).name == "tests"
    stored = await dashboard.store.get_workflow(s.workflow_id)
    assert stored.version == 1
    assert await dashboard.store.list_trigger_auth_methods(s.webhook_id) == []
    assert len(await dashboard.store.list_api_tokens()) == 1


# -- credentials -------------------------------------------------------------------------------


async def test_credentials_list_their_jobs_and_never_their_values(dashboard: Dashboard) -> None:
    page = await dashboard.http.get("/ui/credentials")
    assert page.status_code == 200
    card = page.text.split(f'id="credential-{dashboard.seeded.credential_id}"')[1]
    card = card.split("</article>")[0]
    assert 'chain</a> / <span class="job-name">first</span>' in card
    assert "value set" in card
    assert SEEDED_SECRET not in page.text and "alice" not in page.text


async def test_a_credential_is_created_its_value_set_and_neither_shown(
    dashboard: Dashboard,
) -> None:
    project = dashboard.seeded.project_id
    made = await dashboard.post(
        f"/ui/credentials/{project}",
        {"name": "warehouse", "body": f'{{"password": "{NEW_SECRET}"}}'},
    )
    assert made.status_code == 303
    listed = await dashboard.store.list_credentials(project)
    (new,) = [c for c in listed if c.name == "warehouse"]
    assert await dashboard.store.get_credential_body(new.id) == {"password": NEW_SECRET}
    page = await dashboard.http.get(made.headers["location"])
    assert "Credential warehouse created; its value is set." in text_of(page.text)
    assert NEW_SECRET not in page.text

    second = "another-long-secret-5678"
    changed = await dashboard.post(
        f"/ui/credentials/{project}/{new.id}/value", {"body": f'{{"password": "{second}"}}'}
    )
    assert changed.status_code == 303
    assert await dashboard.store.get_credential_body(new.id) == {"password": second}
    page = await dashboard.http.get(changed.headers["location"])
    assert "The value of warehouse is set." in text_of(page.text)
    assert second not in page.text and NEW_SECRET not in page.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"password": "half', "not JSON: Unterminated string"),
        ('["a", "b"]', "a JSON object is needed"),
        ("", "not JSON: Expecting value at line 1, column 1"),
    ],
)
async def test_a_value_that_is_not_a_json_object_is_refused_by_its_field(
    dashboard: Dashboard, body: str, message: str
) -> None:
    s = dashboard.seeded
    answer = await dashboard.post(
        f"/ui/credentials/{s.project_id}/{s.credential_id}/value", {"body": body}
    )
    assert answer.status_code == 422
    (shown,) = field_error(answer.text)
    assert shown.startswith(message)
    assert f'aria-describedby="value:{s.credential_id}-body-error"' in answer.text
    if body:
        assert body not in answer.text  # never echoed: it may be a secret
    stored = await dashboard.store.get_credential_body(s.credential_id)
    assert stored["password"] == SEEDED_SECRET


async def test_a_new_credential_needs_a_name(dashboard: Dashboard) -> None:
    answer = await dashboard.post(
        f"/ui/credentials/{dashboard.seeded.project_id}", {"name": " ", "body": "{}"}
    )
    assert answer.status_code == 422
    assert field_error(answer.text) == ["String should have at least 1 character"]
    assert 'data-code="invalid_form"' in answer.text


async def test_a_credential_in_use_is_not_deleted_and_the_page_says_why(
    dashboard: Dashboard,
) -> None:
    s = dashboard.seeded
    answer = await dashboard.post(f"/ui/credentials/{s.project_id}/{s.credential_id}/delete", {})
    assert answer.status_code == 409
    assert f"is used by job {s.job_ids[0]}; change those jobs first" in text_of(answer.text)
    assert len(await dashboard.store.list_credentials(s.project_id)) == 1


async def test_an_unused_credential_is_deleted(dashboard: Dashboard) -> None:
    project = dashboard.seeded.project_id
    await dashboard.post(f"/ui/credentials/{project}", {"name": "spare", "body": "{}"})
    (spare,) = [c for c in await dashboard.store.list_credentials(project) if c.name == "spare"]
    answer = await dashboard.post(f"/ui/credentials/{project}/{spare.id}/delete", {})
    assert answer.status_code == 303
    assert spare.id not in {c.id for c in await dashboard.store.list_credentials(project)}


async def test_unknown_projects_and_credentials_are_404_not_500(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    for path, data in [
        ("/ui/credentials/nope", {"name": "x", "body": "{}"}),
        (f"/ui/credentials/{s.project_id}/nope/value", {"body": "{}"}),
        (f"/ui/credentials/{s.project_id}/nope/delete", {}),
    ]:
        answer = await dashboard.post(path, data)
        assert answer.status_code == 404, path
        assert "does not exist" in text_of(answer.text)
    assert (await dashboard.http.get("/ui/triggers/nope")).status_code == 404


# -- triggers ----------------------------------------------------------------------------------


async def test_a_cron_trigger_shows_its_next_five_times_and_its_words(
    dashboard: Dashboard,
) -> None:
    stored = await dashboard.store.get_workflow(dashboard.seeded.workflow_id)
    cron = next(t for t in stored.workflow.triggers if t.type.value == "cron")
    page = await dashboard.http.get(f"/ui/triggers/{cron.id}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "At 09:30, Monday through Friday (Europe/Paris)" in text
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", page.text)
    assert len(rows) == 5
    for local, utc in rows:
        assert " 09:30 CE" in local  # CET or CEST
        assert utc.endswith(("08:30 UTC", "07:30 UTC"))
        assert not local.startswith(("Sat", "Sun"))


async def test_a_trigger_is_disabled_and_enabled_as_a_new_version(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    off = await dashboard.post(
        f"/ui/triggers/{s.webhook_id}/enabled", {"enabled": "false", "version": "1"}
    )
    assert off.status_code == 303
    stored = await dashboard.store.get_workflow(s.workflow_id)
    assert stored.version == 2
    assert not next(t for t in stored.workflow.triggers if t.id == s.webhook_id).enabled
    hook = await dashboard.http.post(f"/i/{s.webhook_id}", json={})
    assert hook.status_code == 404
    page = await dashboard.http.get(off.headers["location"])
    assert "Trigger disabled" in text_of(page.text)

    stale = await dashboard.post(
        f"/ui/triggers/{s.webhook_id}/enabled", {"enabled": "true", "version": "1"}
    )
    assert stale.status_code == 409
    assert not next(
        t
        for t in (await dashboard.store.get_workflow(s.workflow_id)).workflow.triggers
        if t.id == s.webhook_id
    ).enabled
    on = await dashboard.post(
        f"/ui/triggers/{s.webhook_id}/enabled", {"enabled": "true", "version": "2"}
    )
    assert on.status_code == 303
    assert (await dashboard.http.post(f"/i/{s.webhook_id}", json={})).status_code == 200


async def test_bad_enable_forms_are_422_naming_the_field(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    for data, field in [
        ({"enabled": "maybe", "version": "1"}, "enabled"),
        ({"enabled": "true", "version": "x"}, "version"),
    ]:
        answer = await dashboard.post(f"/ui/triggers/{s.webhook_id}/enabled", data)
        assert answer.status_code == 422
        assert field in text_of(answer.text)


async def test_webhook_auth_methods_are_made_attached_and_detached(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    made = await dashboard.post(
        f"/ui/triggers/{s.webhook_id}/auth/new", {"name": "partner key", "auth_type": "api"}
    )
    assert made.status_code == 201
    key = re.search(r'data-copy="([0-9a-f]{64})"', made.text)
    assert key is not None, "the new key is shown once, to copy"
    (method,) = await dashboard.store.list_trigger_auth_methods(s.webhook_id)
    assert method.name == "partner key"
    assert (await dashboard.http.post(f"/i/{s.webhook_id}", json={})).status_code == 401
    keyed = await dashboard.http.post(
        f"/i/{s.webhook_id}", json={}, headers={"x-api-key": key.group(1)}
    )
    assert keyed.status_code == 200
    again = await dashboard.http.get(f"/ui/triggers/{s.webhook_id}")
    assert key.group(1) not in again.text

    detached = await dashboard.post(f"/ui/triggers/{s.webhook_id}/auth/{method.id}/detach", {})
    assert detached.status_code == 303
    assert await dashboard.store.list_trigger_auth_methods(s.webhook_id) == []
    page = await dashboard.http.get(f"/ui/triggers/{s.webhook_id}")
    assert "Open: any request to the URL starts a run." in text_of(page.text)
    attached = await dashboard.post(f"/ui/triggers/{s.webhook_id}/auth", {"method_id": method.id})
    assert attached.status_code == 303
    assert [m.id for m in await dashboard.store.list_trigger_auth_methods(s.webhook_id)] == [
        method.id
    ]


async def test_a_basic_method_with_a_short_password_is_refused_by_its_field(
    dashboard: Dashboard,
) -> None:
    s = dashboard.seeded
    answer = await dashboard.post(
        f"/ui/triggers/{s.webhook_id}/auth/new",
        {"name": "login", "auth_type": "basic", "username": "partner", "password": "short"},
    )
    assert answer.status_code == 422
    assert field_error(answer.text) == ["String should have at least 8 characters"]
    assert 'aria-describedby="method-password-error"' in answer.text
    assert await dashboard.store.list_webhook_auth_methods(s.project_id) == []
    nameless = await dashboard.post(f"/ui/triggers/{s.webhook_id}/auth/new", {"auth_type": "zz"})
    assert nameless.status_code == 422
    assert "choose the kind of method" in text_of(nameless.text)


# -- settings ----------------------------------------------------------------------------------


async def test_project_settings_are_saved_and_bad_values_named(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    path = f"/ui/settings/projects/{s.project_id}"
    saved = await dashboard.post(
        path,
        {
            "name": "tests",
            "concurrency": "3",
            "history_retention_period": "30",
            "dataclip_retention_period": "",
            "retention_policy": "erase_all",
        },
    )
    assert saved.status_code == 303
    project = await dashboard.store.get_project(s.project_id)
    assert (project.concurrency, project.history_retention_period) == (3, 30)
    assert project.dataclip_retention_period is None
    assert project.retention_policy.value == "erase_all"
    api = await dashboard.api("GET", f"/api/projects/{s.project_id}")
    assert api.json()["concurrency"] == 3

    for data, field, message in [
        ({"name": "tests", "concurrency": "0"}, "concurrency", "greater than 0"),
        ({"name": "tests", "concurrency": "many"}, "concurrency", "valid integer"),
        (
            {"name": "tests", "history_retention_period": "-1"},
            "history_retention_period",
            "greater than 0",
        ),
        (
            {"name": "tests", "retention_policy": "keep"},
            "retention_policy",
            "'retain_all' or 'erase_all'",
        ),
        ({"name": ""}, "name", "Field required"),
    ]:
        answer = await dashboard.post(path, data)
        assert answer.status_code == 422, data
        assert f'aria-describedby="project:{s.project_id}-{field}-error"' in answer.text
        (shown,) = field_error(answer.text)
        assert message in shown
        if field != "name":
            assert f'value="{data[field]}"' in answer.text or field == "retention_policy"
    assert (await dashboard.store.get_project(s.project_id)).concurrency == 3


async def test_retries_are_saved_as_a_new_version_and_checked(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    path = f"/ui/settings/workflows/{s.workflow_id}/retry"
    saved = await dashboard.post(
        path,
        {
            "version": "1",
            "max_retries": "4",
            "backoff_ms": "500",
            "backoff_max_ms": "8000",
            "on_fail": "1",
        },
    )
    assert saved.status_code == 303
    stored = await dashboard.store.get_workflow(s.workflow_id)
    assert stored.version == 2
    retry = stored.workflow.retry
    assert (retry.max_retries, retry.backoff_ms, retry.backoff_max_ms, retry.on_fail) == (
        4,
        500,
        8000,
        True,
    )
    too_many = await dashboard.post(path, {"version": "2", "max_retries": "101"})
    assert too_many.status_code == 422
    assert field_error(too_many.text) == ["Input should be less than or equal to 100"]
    stale = await dashboard.post(path, {"version": "1", "max_retries": "2"})
    assert stale.status_code == 409
    assert (await dashboard.store.get_workflow(s.workflow_id)).workflow.retry.max_retries == 4


# -- tokens ------------------------------------------------------------------------------------


async def test_a_token_is_made_shown_once_used_and_revoked(dashboard: Dashboard) -> None:
    made = await dashboard.post("/ui/tokens", {"name": "ci"})
    assert made.status_code == 201
    token = re.search(r'data-copy="(fmn_[^"]+)"', made.text)
    assert token is not None
    secret = token.group(1)
    listing = await dashboard.http.get("/ui/tokens")
    assert secret not in listing.text
    row = listing.text.split('<td data-label="Name">ci')[1].split("</tr>")[0]
    assert "never" in row

    used = await dashboard.http.get("/api/projects", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200
    (ci,) = [t for t in await dashboard.store.list_api_tokens() if t.name == "ci"]
    assert ci.last_used_at is not None
    listing = await dashboard.http.get("/ui/tokens")
    row = listing.text.split('<td data-label="Name">ci')[1].split("</tr>")[0]
    assert "<time" in row and "never" not in row

    revoked = await dashboard.post(f"/ui/tokens/{ci.id}/revoke", {})
    assert revoked.status_code == 303
    refused = await dashboard.http.get(
        "/api/projects", headers={"Authorization": f"Bearer {secret}"}
    )
    assert refused.status_code == 401


async def test_a_token_needs_a_name(dashboard: Dashboard) -> None:
    answer = await dashboard.post("/ui/tokens", {"name": "  "})
    assert answer.status_code == 422
    assert field_error(answer.text) == ["a token needs a name: who or what it is for"]
    assert len(await dashboard.store.list_api_tokens()) == 1


async def test_revoking_an_unknown_token_is_404(dashboard: Dashboard) -> None:
    answer = await dashboard.post("/ui/tokens/nope/revoke", {})
    assert answer.status_code == 404


# -- what no page shows ------------------------------------------------------------------------


async def test_no_management_page_shows_a_credential_value(dashboard: Dashboard) -> None:
    s = dashboard.seeded
    for path in [*PAGES, f"/ui/triggers/{s.webhook_id}", "/ui", "/ui/runs"]:
        page = await dashboard.http.get(path)
        assert page.status_code == 200, path
        assert SEEDED_SECRET not in page.text, path


# -- the API's docs, offline -------------------------------------------------------------------


async def test_the_api_docs_load_nothing_from_another_host(dashboard: Dashboard) -> None:
    for page_path in ("/docs", "/redoc"):
        docs = await dashboard.http.get(page_path)
        assert docs.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", docs.text)
        found = [a or b for a, b in urls]
        assert found, docs.text
        external = [u for u in found if re.match(r"(https?:)?//", u)]
        assert external == [], f"{page_path} loads {external}"
        assert "cdn.jsdelivr" not in docs.text and "fonts.googleapis" not in docs.text
        for url in found:
            asset = await dashboard.http.get(url)
            assert asset.status_code == 200, url
    docs = await dashboard.http.get("/docs")
    assert '"validatorUrl": null' in docs.text  # its badge would be an image from elsewhere
    bundle = await dashboard.http.get("/static-offline-docs/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text[:200_000]
