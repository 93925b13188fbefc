"""Attacks on OAuth2 credentials (issue 19), against an OAuth2 provider on loopback and a real
coordinator: people without the admin role connecting or creating one, a login CSRF through the
callback with another person's code and state, and the refresh token or client secret leaking
through an API answer, the audit trail, the dashboard's HTML, the coordinator's log or what a
run's worker is given."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen.coordinator.dashboard.session import COOKIE
from fulmen.errors import CredentialError, NotFoundError
from fulmen.store import (
    AuditFilter,
    EnqueueRequest,
    Grant,
    NewCredential,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2Status,
)
from fulmen_testing.oauth2_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAuth2Provider,
    oauth2_provider,
)
from fulmen_testing.operator import BACKENDS, site, store_at
from fulmen_testing.sign_in import open_session
from fulmen_testing.teams import team

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def provider() -> AsyncIterator[OAuth2Provider]:
    async with oauth2_provider() as made:
        yield made


def _document(provider: OAuth2Provider, grant: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "partner",
        "grant": grant,
        "token_url": provider.token_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["read"],
        "body": {},
    }
    if grant == "authorization_code":
        doc["authorization_url"] = provider.authorize_url
    return doc


def _moves_to(page: str) -> str:
    found = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page)
    assert found, page
    return html.unescape(found[1])


async def test_viewers_and_editors_cannot_create_connect_or_replace_and_see_no_token(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        people = await team(store)
        project = people.project_id
        made = await where.api(
            "POST",
            f"/api/projects/{project}/credentials/oauth2",
            201,
            json=_document(provider, "client_credentials"),
        )
        asked = provider.count("client_credentials")
        for who in ("viewer", "editor"):
            bearer = people.bearer(who)
            for method, path, body in (
                (
                    "POST",
                    f"/api/projects/{project}/credentials/oauth2",
                    _document(provider, "client_credentials"),
                ),
                (
                    "PUT",
                    f"/api/projects/{project}/credentials/{made['id']}/oauth2",
                    _document(provider, "client_credentials"),
                ),
                ("POST", f"/api/credentials/{made['id']}/oauth2/connect", None),
            ):
                answer = await where.http.request(method, path, json=body, headers=bearer)
                assert answer.status_code == 403, (who, method, path, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"
            state = await where.http.get(f"/api/credentials/{made['id']}/oauth2", headers=bearer)
            assert state.status_code == 200
            assert provider.issued[-1] not in state.text and CLIENT_SECRET not in state.text
            async with httpx2.AsyncClient(
                base_url=where.served.base_url,
                cookies={COOKIE: await open_session(store, people.users[who].id)},
            ) as browser:
                form = {**_document(provider, "client_credentials"), "scopes": "read", "body": ""}
                created = await browser.post(f"/ui/credentials/{project}/oauth2", data=form)
                assert created.status_code == 403, (who, created.status_code)
                go = await browser.post(f"/ui/credentials/{project}/{made['id']}/oauth2/connect")
                assert go.status_code == 403, (who, go.status_code)
                page = await browser.get("/ui/credentials")
                assert provider.issued[-1] not in page.text and CLIENT_SECRET not in page.text
        outsider = await where.http.get(
            f"/api/credentials/{made['id']}/oauth2", headers=people.bearer("outsider")
        )
        assert outsider.status_code == 404
        assert provider.count("client_credentials") == asked
        assert len(await store.list_credentials(project)) == 2  # the seeded one and this one


async def test_a_callback_with_another_persons_code_and_state_connects_nothing(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    """Login CSRF: the attacker begins Connect on a credential of their own, stops at the
    provider's answer and has the victim's browser follow it; the victim's own pending
    authorization still works afterwards."""
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        people = await team(store)
        attacker_project = people.other_project_id
        base = where.served.base_url
        # The attacker owns the other project (an API token as its owner: "service").
        made_theirs = await where.http.post(
            f"/api/projects/{attacker_project}/credentials/oauth2",
            json=_document(provider, "authorization_code"),
            headers=people.bearer("service"),
        )
        assert made_theirs.status_code == 201, made_theirs.text
        made_mine = await where.api(
            "POST",
            f"/api/projects/{people.project_id}/credentials/oauth2",
            201,
            json=_document(provider, "authorization_code"),
        )

        async def consent(client: httpx2.AsyncClient, project: str, credential: str) -> str:
            go = await client.post(f"/ui/credentials/{project}/{credential}/oauth2/connect")
            assert go.status_code == 200, go.text
            answer = await client.get(_moves_to(go.text))
            assert answer.status_code == 303
            return str(answer.headers["location"])

        victim_user = people.users["owner"]
        async with (
            httpx2.AsyncClient(
                base_url=base, cookies={COOKIE: await open_session(store, victim_user.id)}
            ) as victim,
        ):
            mine = await consent(victim, people.project_id, made_mine["id"])
            # The attacker's callback (their code, their state), made as the provider would.
            theirs_state = "attacker-state-" + "x" * 20
            forged = f"{base}/ui/oauth2/callback?code=attacker-code&state={theirs_state}"
            for callback in (forged, mine.replace("state=", "state=0")):
                moving = await victim.get(callback)
                done = await victim.get(_moves_to(moving.text))
                assert done.status_code == 422 and 'data-code="oauth2_state"' in done.text
            assert provider.count("authorization_code") == 0
            for credential in (made_theirs.json()["id"], made_mine["id"]):
                state = await store.get_oauth2_state(credential)
                assert state.status is not OAuth2Status.CONNECTED
            # The victim's own authorization was not used up by the attempts.
            moving = await victim.get(mine)
            done = await victim.get(_moves_to(moving.text))
            assert done.status_code == 303 and "done=connected" in done.headers["location"]
            assert provider.count("authorization_code") == 1


async def test_the_refresh_token_and_client_secret_never_leave_the_coordinator(
    tmp_path: Path, provider: OAuth2Provider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        people = await team(store)
        seeded = people.seeded
        refresh = provider.refresh_token()
        await store.put_oauth2_credential(
            NewCredential(seeded.credential_id, seeded.project_id, "partner", {"k": "v"}),
            OAuth2Settings(
                Grant.AUTHORIZATION_CODE,
                provider.token_url,
                CLIENT_ID,
                provider.authorize_url,
                ("read",),
            ),
            OAuth2Secrets(CLIENT_SECRET, "at-old-0123456789", refresh),
            status=OAuth2Status.CONNECTED,
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        made = await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id))
        body = await where.served.coordinator.oauth2.body_for_run(seeded.credential_id, made.run_id)
        assert body["access_token"] == provider.issued[-1]
        secrets = [refresh, CLIENT_SECRET, *provider._refresh_tokens]
        seen: list[str] = [str(body)]
        for who in ("owner", "admin", "editor", "viewer"):
            for path in (
                f"/api/credentials/{seeded.credential_id}/oauth2",
                f"/api/credentials/{seeded.credential_id}",
                f"/api/projects/{seeded.project_id}/credentials",
                f"/api/projects/{seeded.project_id}/audit",
                f"/api/runs/{made.run_id}",
            ):
                answer = await where.http.get(path, headers=people.bearer(who))
                seen.append(answer.text)
            async with httpx2.AsyncClient(
                base_url=where.served.base_url,
                cookies={COOKIE: await open_session(store, people.users[who].id)},
            ) as browser:
                for page in ("/ui/credentials", f"/ui/runs/{made.run_id}", "/ui/audit"):
                    seen.append((await browser.get(page)).text)
        records = await store.list_audit(AuditFilter(project_id=seeded.project_id), limit=500)
        seen += [repr(record) for record in records.items]
        seen += [record.getMessage() for record in caplog.records]
        everything = "\n".join(seen)
        for secret in secrets:
            assert secret not in everything
        assert provider.issued[-1] not in "\n".join(seen[1:])


async def test_the_callback_cannot_be_made_to_move_on_anywhere_but_the_finish(
    tmp_path: Path,
) -> None:
    """Open redirect or markup through the callback's query, which anyone can link to."""
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        for query in (
            {"error": "x", "error_description": '";url=https://evil.example/"'},
            {"code": "0; url=https://evil.example/", "state": "<script>alert(1)</script>"},
            {"state": "x\r\nSet-Cookie: fulmen_oauth2=attacker"},
            {"next": "https://evil.example/", "redirect_uri": "https://evil.example/"},
        ):
            page = await where.http.get("/ui/oauth2/callback", params=query)
            assert page.status_code == 200
            assert _moves_to(page.text).startswith("/ui/oauth2/finish?"), query
            assert 'evil.example/"' not in page.text and "<script>alert" not in page.text
            assert "set-cookie" not in {
                k.lower() for k in page.headers if "attacker" in page.headers[k]
            }


async def test_pointing_a_credential_at_another_token_url_takes_none_of_its_secrets_there(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    """An admin who may not read the refresh token or the client secret replaces the token
    URL with a server of their own, hoping the coordinator sends them there."""
    async with (
        oauth2_provider() as attacker,
        store_at("sqlite", tmp_path) as (store, _),
        site(store) as where,
    ):
        people = await team(store)
        seeded = people.seeded
        refresh = provider.refresh_token()
        await store.put_oauth2_credential(
            NewCredential(seeded.credential_id, seeded.project_id, "partner", {}),
            OAuth2Settings(
                Grant.AUTHORIZATION_CODE, provider.token_url, CLIENT_ID, provider.authorize_url
            ),
            OAuth2Secrets(CLIENT_SECRET, "at-old-0123456789", refresh),
            status=OAuth2Status.CONNECTED,
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        path = f"/api/projects/{seeded.project_id}/credentials/{seeded.credential_id}/oauth2"
        admin = people.bearer("admin")
        keep_secret = {**_document(attacker, "authorization_code"), "client_secret": ""}
        kept = await where.http.put(path, json=keep_secret, headers=admin)
        assert kept.status_code == 422, kept.text  # the secret is given again, or nothing
        for grant in ("authorization_code", "client_credentials"):
            moved = {**_document(attacker, grant), "client_secret": "the-attackers-guess"}
            answer = await where.http.put(path, json=moved, headers=admin)
            assert answer.status_code == 200, answer.text
            made = await store.enqueue(EnqueueRequest(workflow_id=seeded.workflow_id))
            with pytest.raises(CredentialError):  # not connected: nothing to give the run
                await where.served.coordinator.oauth2.body_for_run(
                    seeded.credential_id, made.run_id
                )
        sent = repr(attacker.requests)
        assert refresh not in sent and CLIENT_SECRET not in sent, sent
        assert all(form.get("grant_type") != "refresh_token" for form in attacker.requests)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_owner_of_another_project_cannot_take_over_a_credential_by_its_id(
    tmp_path: Path, provider: OAuth2Provider, backend: str
) -> None:
    """The owner of project B names project A's credential in B's routes: create with its
    id, replace it, connect it. On both stores: the upsert is where they differ."""
    async with store_at(backend, tmp_path) as (store, _), site(store) as where:
        people = await team(store)
        victim = people.seeded.credential_id
        before = await store.get_credential_body(victim)
        theirs = people.other_project_id
        owner_of_b = people.bearer("service")
        document = {**_document(provider, "client_credentials"), "id": victim}
        for method, path, body in (
            ("POST", f"/api/projects/{theirs}/credentials/oauth2", document),
            ("PUT", f"/api/projects/{theirs}/credentials/{victim}/oauth2", document),
            ("POST", f"/api/credentials/{victim}/oauth2/connect", None),
            ("GET", f"/api/credentials/{victim}/oauth2", None),
        ):
            answer = await where.http.request(method, path, json=body, headers=owner_of_b)
            assert answer.status_code in (404, 409, 422), (method, path, answer.text)
        info = await store.get_credential(victim)
        assert info.project_id == people.project_id
        assert await store.get_credential_body(victim) == before
        assert provider.count("client_credentials") == 0
        with pytest.raises(NotFoundError):  # no OAuth2 row was left on it either
            await store.get_oauth2_state(victim)


async def test_an_admin_cannot_connect_another_projects_credential_through_their_own(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    """Connect's URL names the admin's own project and another project's credential: the
    flow must not begin, or the tokens would land in a credential they do not manage."""
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        people = await team(store)
        made = await where.http.post(
            f"/api/projects/{people.other_project_id}/credentials/oauth2",
            json=_document(provider, "authorization_code"),
            headers=people.bearer("service"),
        )
        assert made.status_code == 201, made.text
        theirs = made.json()["id"]
        async with httpx2.AsyncClient(
            base_url=where.served.base_url,
            cookies={COOKIE: await open_session(store, people.users["admin"].id)},
        ) as admin:
            go = await admin.post(f"/ui/credentials/{people.project_id}/{theirs}/oauth2/connect")
            assert go.status_code in (404, 422), go.text
            assert provider.authorize_url not in go.text
            assert "fulmen_oauth2" not in go.headers.get("set-cookie", "")
            direct = await admin.post(
                f"/ui/credentials/{people.other_project_id}/{theirs}/oauth2/connect"
            )
            assert direct.status_code in (403, 404), direct.text
        assert (await store.get_oauth2_state(theirs)).status is OAuth2Status.NOT_CONNECTED
