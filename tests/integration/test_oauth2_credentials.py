"""OAuth2 credentials that refresh themselves (issue 19), against an OAuth2 provider on
loopback (fulmen_testing.oauth2_provider), a real coordinator and real Fulmen workers.

* a client-credentials credential made through the REST API is connected at once; its state
  shows no token; a run's body has the access token and never the refresh token or secret;
* settings that cannot work are refused with the field at fault, and nothing is stored;
* the authorization-code flow through the dashboard over HTTP: Connect, the provider, the
  callback, the finish; a replayed or another session's finish is refused;
* ten runs starting together with an expired token: one refresh, on SQLite (one coordinator)
  and on PostgreSQL (two coordinators, a worker on each); every run gets the new token and
  its logs show it masked;
* a refresh the provider refuses marks the credential and fails the run with the
  CredentialError; a provider that is down fails the run and leaves the credential connected.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen.coordinator.dashboard.session import COOKIE
from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import (
    AuditFilter,
    Grant,
    NewCredential,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2Status,
    Run,
    RunFilter,
    SQLStore,
    open_store,
)
from fulmen_testing.coordinator import CREDENTIAL_KEY, Seeded, seed
from fulmen_testing.oauth2_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAuth2Provider,
    oauth2_provider,
)
from fulmen_testing.operator import BACKENDS, Site, fulmen_worker, site, store_at, until
from fulmen_testing.sign_in import open_session, user

pytestmark = pytest.mark.anyio

#: Prints the token it was given: the logs must show it masked.
PRINTS_TOKEN = "fn(lambda s: (print('token', s['configuration']['access_token']), s)[1])"
RUNS = 10


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def provider() -> AsyncIterator[OAuth2Provider]:
    async with oauth2_provider() as made:
        yield made


def settings_doc(provider: OAuth2Provider, grant: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "partner",
        "grant": grant,
        "token_url": provider.token_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["read"],
        "body": {"instance_url": "https://partner.example"},
    }
    if grant == "authorization_code":
        doc["authorization_url"] = provider.authorize_url
    return doc | changes


async def actions(store: SQLStore, credential_id: str) -> list[str]:
    page = await store.list_audit(AuditFilter(target=credential_id), limit=100)
    return [record.action for record in reversed(page.items)]


async def expired(store: SQLStore, provider: OAuth2Provider, seeded: Seeded) -> str:
    """The seeded credential made an OAuth2 one, connected, its token expired a minute ago;
    the old access token."""
    old = "at-old-0123456789abcdef"
    await store.put_oauth2_credential(
        NewCredential(seeded.credential_id, seeded.project_id, "partner", {}),
        OAuth2Settings(
            Grant.AUTHORIZATION_CODE,
            provider.token_url,
            CLIENT_ID,
            provider.authorize_url,
            ("read",),
        ),
        OAuth2Secrets(CLIENT_SECRET, old, provider.refresh_token()),
        status=OAuth2Status.CONNECTED,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    return old


# -- the REST API ----------------------------------------------------------------------------


async def test_a_client_credentials_credential_is_connected_at_once(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store)
        made = await where.api(
            "POST",
            f"/api/projects/{seeded.project_id}/credentials/oauth2",
            201,
            json=settings_doc(provider, "client_credentials"),
        )
        assert made["status"] == "connected" and made["grant"] == "client_credentials"
        assert made["expires_at"] is not None and made["problem"] == ""
        state = await where.api("GET", f"/api/credentials/{made['id']}/oauth2")
        assert state == made
        shown = str(made) + str(state)
        assert provider.issued[-1] not in shown and CLIENT_SECRET not in shown
        assert provider.count("client_credentials") == 1
        body = await store.get_credential_body(made["id"])
        assert body["access_token"] == provider.issued[-1]
        assert body["instance_url"] == "https://partner.example"
        assert body["token_type"] == "Bearer" and isinstance(body["expires_at"], int)
        assert "refresh_token" not in body and CLIENT_SECRET not in str(body)
        assert await actions(store, made["id"]) == [
            "credential.created",
            "credential.oauth2_connected",
        ]
        # Connecting again gets a new token.
        again = await where.api("POST", f"/api/credentials/{made['id']}/oauth2/connect")
        assert again["status"] == "connected" and provider.count("client_credentials") == 2


@pytest.mark.parametrize(
    ("grant", "change", "field"),
    [
        ("client_credentials", {"token_url": ""}, "token_url"),
        ("client_credentials", {"token_url": "http://provider.example/token"}, "token_url"),
        ("client_credentials", {"token_url": "ftp://127.0.0.1/token"}, "token_url"),
        ("authorization_code", {"authorization_url": ""}, "authorization_url"),
        (
            "authorization_code",
            {"authorization_url": "http://provider.example/authorize"},
            "authorization_url",
        ),
        ("client_credentials", {"authorization_url": "https://p.example/a"}, "authorization_url"),
        ("client_credentials", {"client_id": " "}, "client_id"),
        ("client_credentials", {"scopes": ['read "all"']}, "scopes"),
    ],
)
async def test_settings_that_cannot_work_are_refused_naming_the_field(
    tmp_path: Path, provider: OAuth2Provider, grant: str, change: dict[str, Any], field: str
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store)
        answer = await where.api(
            "POST",
            f"/api/projects/{seeded.project_id}/credentials/oauth2",
            422,
            json=settings_doc(provider, grant, **change),
        )
        assert answer["error"]["code"] == "invalid_oauth2_settings"
        assert answer["error"]["field"] == field
        assert [c.id for c in await store.list_credentials(seeded.project_id)] == [
            seeded.credential_id
        ]
        assert provider.requests == []


async def test_malformed_documents_and_wrong_targets_are_refused(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store)
        path = f"/api/projects/{seeded.project_id}/credentials/oauth2"
        for bad in (
            settings_doc(provider, "password"),
            {
                k: v
                for k, v in settings_doc(provider, "client_credentials").items()
                if k != "client_secret"
            },
            settings_doc(provider, "client_credentials", scopes="read"),
        ):
            assert "detail" in await where.api("POST", path, 422, json=bad)
        # A plain credential has no OAuth2 state, and cannot be connected.
        missing = await where.api("GET", f"/api/credentials/{seeded.credential_id}/oauth2", 404)
        assert missing["error"]["code"] == "not_found"
        made = await where.api("POST", path, 201, json=settings_doc(provider, "authorization_code"))
        assert made["status"] == "not_connected"
        refused = await where.api("POST", f"/api/credentials/{made['id']}/oauth2/connect", 409)
        assert "dashboard" in refused["error"]["message"]
        assert provider.requests == []


async def test_the_command_line_creates_and_shows_one(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        await seed(store)

        async def fulmen(*args: str, secret: str) -> Result:
            env = {"FULMEN_URL": where.served.base_url, "FULMEN_API_TOKEN": where.token}
            return await anyio.to_thread.run_sync(
                lambda: CliRunner().invoke(cli, list(args), env=env, input=secret)
            )

        made = await fulmen(
            "credentials", "oauth2", "tests", "partner",
            "--grant", "client_credentials",
            "--token-url", provider.token_url,
            "--client-id", CLIENT_ID,
            "--scope", "read",
            secret=CLIENT_SECRET,
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        assert "created" in made.output and "status: connected" in made.output
        shown = await fulmen("credentials", "status", "tests", "partner", secret="")
        assert shown.exit_code == 0 and "status: connected" in shown.output
        assert "token expires at:" in shown.output
        assert provider.issued[-1] not in made.output + shown.output
        assert CLIENT_SECRET not in made.output + shown.output
        refused = await fulmen(
            "credentials", "oauth2", "tests", "partner",
            "--grant", "client_credentials",
            "--token-url", "http://provider.example/token",
            "--client-id", CLIENT_ID,
            secret=CLIENT_SECRET,
        )  # fmt: skip
        assert refused.exit_code == 1 and "https://" in refused.output
        empty = await fulmen(
            "credentials", "oauth2", "tests", "partner",
            "--grant", "client_credentials",
            "--token-url", provider.token_url,
            "--client-id", CLIENT_ID,
            secret="",
        )  # fmt: skip
        assert empty.exit_code != 0 and "client secret is empty" in empty.output
        assert provider.count("client_credentials") == 1
        plain = await fulmen("credentials", "status", "tests", "api", secret="")
        assert plain.exit_code == 1 and "not an OAuth2 credential" in plain.output


# -- the dashboard ---------------------------------------------------------------------------


async def test_the_authorization_code_flow_through_the_dashboard(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store)
        admin = await user(store, "admin@example.org", admin=True)
        other = await user(store, "other@example.org", admin=True)
        base = where.served.base_url
        async with (
            httpx2.AsyncClient(
                base_url=base, cookies={COOKIE: await open_session(store, admin.id)}
            ) as me,
            httpx2.AsyncClient(
                base_url=base, cookies={COOKIE: await open_session(store, other.id)}
            ) as them,
        ):
            form = settings_doc(provider, "authorization_code")
            made = await me.post(
                f"/ui/credentials/{seeded.project_id}/oauth2",
                data={**form, "scopes": "read", "body": '{"instance_url": "https://x.example"}'},
            )
            assert made.status_code == 303, made.text
            credential_id = parse_qs(urlsplit(made.headers["location"]).query)["id"][0]
            page = await me.get("/ui/credentials")
            assert 'data-status="not_connected"' in page.text

            async def begin(client: httpx2.AsyncClient) -> str:
                """Connect, and the provider's consent: the callback's URL."""
                go = await client.post(
                    f"/ui/credentials/{seeded.project_id}/{credential_id}/oauth2/connect"
                )
                assert go.status_code == 200, go.text  # a page that moves on by itself
                to = moves_to(go.text)
                assert to.startswith(provider.authorize_url)
                asked = parse_qs(urlsplit(to).query)
                assert asked["code_challenge_method"] == ["S256"] and asked["scope"] == ["read"]
                consent = await client.get(to)
                assert consent.status_code == 303
                return consent.headers["location"]

            callback = await begin(me)
            assert callback.startswith(f"{base}/ui/oauth2/callback?")
            moving = await me.get(callback)
            assert moving.status_code == 200
            finish = moves_to(moving.text)
            done = await me.get(finish)
            assert done.status_code == 303, done.text
            assert "done=connected" in done.headers["location"]
            state = await store.get_oauth2_state(credential_id)
            assert state.status is OAuth2Status.CONNECTED and state.expires_at is not None
            assert provider.count("authorization_code") == 1
            body = await store.get_credential_body(credential_id)
            assert body["access_token"] == provider.issued[-1]
            assert body["instance_url"] == "https://x.example"
            page = await me.get("/ui/credentials")
            assert 'data-status="connected"' in page.text and provider.issued[-1] not in page.text
            records = await store.list_audit(AuditFilter(target=credential_id), limit=10)
            connected = [r for r in records.items if r.action == "credential.oauth2_connected"]
            assert [r.actor.name for r in connected] == [admin.email]

            # The same finish again: the authorization was taken; the provider is not asked.
            replay = await me.get(finish)
            assert replay.status_code == 422 and 'data-code="oauth2_state"' in replay.text
            assert provider.count("authorization_code") == 1

            # A finish in another session, even with this browser's state cookie, is refused.
            callback = await begin(me)
            moving = await me.get(callback)
            finish = moves_to(moving.text)
            for cookie in me.cookies.jar:
                if cookie.name == "fulmen_oauth2":
                    them.cookies.set(cookie.name, cookie.value or "", path=cookie.path)
            stolen = await them.get(finish)
            assert stolen.status_code == 422 and 'data-code="oauth2_state"' in stolen.text
            assert provider.count("authorization_code") == 1
            # ... and a state this browser never began (no cookie) finds nothing either.
            bare = await me.get(finish.replace("state=", "state=x"))
            assert bare.status_code == 422

            # A provider that refuses consent: said on the page, nothing changes.
            provider.deny = True
            moving = await me.get(await begin(me))
            finish = moves_to(moving.text)
            denied = await me.get(finish)
            assert denied.status_code == 502 and "access_denied" in denied.text
            assert (await store.get_oauth2_state(credential_id)).status is OAuth2Status.CONNECTED


def moves_to(page: str) -> str:
    """Where a page that moves on by itself goes."""
    found = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page)
    assert found, page
    return html.unescape(found[1])


# -- runs ------------------------------------------------------------------------------------


async def runs_of(store: SQLStore, workflow_id: str) -> list[Run]:
    return list((await store.list_runs(RunFilter(workflow_id=workflow_id), limit=100)).items)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ten_runs_starting_together_refresh_the_token_once(
    backend: str, tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at(backend, tmp_path) as (store, url):
        seeded = await seed(store, jobs=(("prints", PRINTS_TOKEN),))
        old = await expired(store, provider, seeded)
        provider.hold = asyncio.Event()
        async with AsyncExitStack() as stack:
            stores = [store]
            if backend == "postgres":  # a second coordinator on the same database
                stores.append(
                    await stack.enter_async_context(
                        await open_store(url, credential_key=CREDENTIAL_KEY)
                    )
                )
            sites: list[Site] = [await stack.enter_async_context(site(s)) for s in stores]
            for number, where in enumerate(sites):
                await stack.enter_async_context(
                    fulmen_worker(
                        where.served, capacity=RUNS // len(sites), worker_name=f"worker-{number}"
                    )
                )
            for i in range(RUNS):
                answer = await sites[i % len(sites)].http.post(f"/i/{seeded.webhook_id}", json={})
                assert answer.status_code == 200
            # The first refresh is held at the provider until every run has been joined: the
            # others ask for the credential while it is in flight.
            await until(lambda: asyncio.sleep(0, provider.count("refresh_token")), bool)
            await until(
                lambda: runs_of(store, seeded.workflow_id),
                lambda runs: len(runs) == RUNS and all(r.joined_at for r in runs),
                timeout=60,
                what="every run joined",
            )
            provider.hold.set()
            ran = await until(
                lambda: runs_of(store, seeded.workflow_id),
                lambda runs: all(run.state in FINAL_RUN_STATES for run in runs),
                timeout=120,
                what="every run ended",
            )
        assert [run.state for run in ran] == ["success"] * RUNS, [r.error_message for r in ran]
        assert provider.count("refresh_token") == 1
        new = provider.issued[-1]
        assert (await store.get_credential_body(seeded.credential_id))["access_token"] == new
        for run in ran:
            logs = [line.message for line in (await store.get_logs(run.id)).items]
            assert "token ***" in logs, logs
            assert not any(new in line or old in line for line in logs)
        assert (await actions(store, seeded.credential_id)).count(
            "credential.oauth2_refreshed"
        ) == 1


async def test_a_refused_refresh_marks_the_credential_and_fails_the_run(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store, jobs=(("prints", PRINTS_TOKEN),))
        await expired(store, provider, seeded)
        async with fulmen_worker(where.served):
            # Down: the run fails, the credential stays connected for the next use.
            provider.down = True
            failed = await one_run(where, seeded)
            assert "CredentialError (provider_unavailable)" in (failed.error_message or "")
            state = await where.api("GET", f"/api/credentials/{seeded.credential_id}/oauth2")
            assert state["status"] == "connected"
            # The grant revoked: the credential needs re-authorisation, said everywhere.
            provider.down, provider.revoked = False, True
            where.served.coordinator.oauth2._failures.clear()  # past FAILURE_MEMORY
            failed = await one_run(where, seeded)
        assert failed.state == "exception" and failed.error_type == "CredentialLoadError"
        message = failed.error_message or ""
        assert "CredentialError (reauthorization_required)" in message
        assert "invalid_grant" in message and "connect the credential again" in message
        state = await where.api("GET", f"/api/credentials/{seeded.credential_id}/oauth2")
        assert state["status"] == "needs_reauthorization" and "invalid_grant" in state["problem"]
        assert await actions(store, seeded.credential_id) == [
            "credential.oauth2_refresh_failed",
            "credential.oauth2_reauthorization_needed",
        ]
        asked = provider.count("refresh_token")
        async with fulmen_worker(where.served):
            again = await one_run(where, seeded)
        assert "needs re-authorisation" in (again.error_message or "")
        assert provider.count("refresh_token") == asked  # the provider is not asked again


async def test_a_client_credentials_credential_saved_while_its_provider_was_down(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    """Saved unconnected, with why; its first run gets it a token."""
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store, jobs=(("prints", PRINTS_TOKEN),))
        provider.down = True
        saved = await where.api(
            "PUT",
            f"/api/projects/{seeded.project_id}/credentials/{seeded.credential_id}/oauth2",
            json=settings_doc(provider, "client_credentials"),
        )
        assert saved["status"] == "not_connected" and "temporarily_unavailable" in saved["problem"]
        assert await store.get_credential_body(seeded.credential_id) == {
            "instance_url": "https://partner.example"
        }
        provider.down = False
        async with fulmen_worker(where.served):
            ran = await one_run(where, seeded)
        assert ran.state == "success", ran.error_message
        state = await where.api("GET", f"/api/credentials/{seeded.credential_id}/oauth2")
        assert state["status"] == "connected" and state["problem"] == ""
        assert provider.count("client_credentials") == 2
        logs = [line.message for line in (await store.get_logs(ran.id)).items]
        assert "token ***" in logs and not any(provider.issued[-1] in line for line in logs)


async def one_run(where: Site, seeded: Seeded) -> Run:
    answer = await where.http.post(f"/i/{seeded.webhook_id}", json={})
    assert answer.status_code == 200
    run_id = answer.json()["run_id"]
    detail = await until(
        lambda: where.store.get_run(run_id),
        lambda detail: detail.run.state in FINAL_RUN_STATES,
        timeout=60,
        what="the run ended",
    )
    return detail.run
