"""A keychain choosing an OAuth2 credential (issue 19): the chosen one's expired token is
refreshed before the run's worker gets it, and the keychain's other OAuth2 credential, not
chosen, is neither refreshed nor given; on a real coordinator and a real Fulmen worker, against
an OAuth2 provider on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from fulmen.lifecycle import FINAL_RUN_STATES
from fulmen.store import (
    Grant,
    NewCredential,
    NewKeychain,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2Status,
    SQLStore,
)
from fulmen_testing.coordinator import seed
from fulmen_testing.oauth2_provider import CLIENT_ID, CLIENT_SECRET, OAuth2Provider, oauth2_provider
from fulmen_testing.operator import fulmen_worker, site, store_at, until

pytestmark = pytest.mark.anyio

PRINTS_TOKEN = "fn(lambda s: (print('token', s['configuration']['access_token']), s)[1])"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def provider() -> AsyncIterator[OAuth2Provider]:
    async with oauth2_provider() as made:
        yield made


async def expired_oauth2(
    store: SQLStore, provider: OAuth2Provider, project_id: str, name: str
) -> tuple[str, str]:
    """A connected OAuth2 credential whose token expired a minute ago: its id and old token."""
    credential_id, old = str(uuid4()), f"at-{name}-old-0123456789"
    await store.put_oauth2_credential(
        NewCredential(credential_id, project_id, name, {}),
        OAuth2Settings(
            Grant.AUTHORIZATION_CODE, provider.token_url, CLIENT_ID, provider.authorize_url, ()
        ),
        OAuth2Secrets(CLIENT_SECRET, old, provider.refresh_token()),
        status=OAuth2Status.CONNECTED,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    return credential_id, old


async def test_the_chosen_oauth2_credential_is_refreshed_and_the_other_left_alone(
    tmp_path: Path, provider: OAuth2Provider
) -> None:
    async with store_at("sqlite", tmp_path) as (store, _), site(store) as where:
        seeded = await seed(store, jobs=(("prints", PRINTS_TOKEN),))
        north, north_old = await expired_oauth2(store, provider, seeded.project_id, "north")
        south, south_old = await expired_oauth2(store, provider, seeded.project_id, "south")
        keychain = await store.put_keychain(
            NewKeychain(
                str(uuid4()), seeded.project_id, "sites", "$.data.site", {"n": north, "s": south}
            )
        )
        stored = await store.get_workflow(seeded.workflow_id)
        [job] = stored.workflow.jobs
        jobs = (replace(job, credential_id=None, keychain_id=keychain.id),)
        await store.replace_workflow(replace(stored.workflow, jobs=jobs))
        async with fulmen_worker(where.served):
            answer = await where.http.post(f"/i/{seeded.webhook_id}", json={"site": "n"})
            run_id = answer.json()["run_id"]
            detail = await until(
                lambda: store.get_run(run_id),
                lambda detail: detail.run.state in FINAL_RUN_STATES,
                timeout=60,
                what="the run ended",
            )
        assert detail.run.state == "success", detail.run.error_message
        assert provider.count("refresh_token") == 1
        new = provider.issued[-1]
        assert (await store.get_credential_body(north))["access_token"] == new
        assert (await store.get_credential_body(south))["access_token"] == south_old
        logs = [line.message for line in (await store.get_logs(run_id)).items]
        assert "token ***" in logs
        assert not any(token in line for line in logs for token in (new, north_old))
