"""OAuth2 credentials in the store (issue 19), on SQLite and PostgreSQL: the secrets sealed
apart from the body, the refresh lease (one holder at a time, taken again once it ran out),
authorizations taken once and not after they expire, and both gone with their credential."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from fulmen.errors import NotFoundError
from fulmen.store import (
    Grant,
    NewCredential,
    OAuth2Authorization,
    OAuth2Secrets,
    OAuth2Settings,
    OAuth2Status,
    Project,
    SQLStore,
)
from fulmen_testing.clock import FakeClock

pytestmark = pytest.mark.anyio

SETTINGS = OAuth2Settings(Grant.CLIENT_CREDENTIALS, "https://p.example/t", "client", scopes=("a",))


async def oauth2_credential(store: SQLStore, clock: FakeClock) -> str:
    project = await store.create_project(Project(id=str(uuid4()), name="p"))
    credential_id = str(uuid4())
    await store.put_oauth2_credential(
        NewCredential(credential_id, project.id, "partner", {"instance_url": "https://x"}),
        SETTINGS,
        OAuth2Secrets("client-secret", "at-0123456789", "rt-0123456789", scope="a"),
        status=OAuth2Status.CONNECTED,
        expires_at=clock.now() + timedelta(hours=1),
    )
    return credential_id


async def test_a_body_carries_the_token_and_never_the_refresh_token(
    store: SQLStore, clock: FakeClock
) -> None:
    credential_id = await oauth2_credential(store, clock)
    body = await store.get_credential_body(credential_id)
    assert body == {
        "instance_url": "https://x",
        "access_token": "at-0123456789",
        "token_type": "Bearer",
        "scope": "a",
        "expires_at": int((clock.now() + timedelta(hours=1)).timestamp()),
    }
    state = await store.get_oauth2_state(credential_id)
    assert state.status is OAuth2Status.CONNECTED and state.settings == SETTINGS
    project_id = (await store.get_credential(credential_id)).project_id
    assert [s.credential_id for s in await store.list_oauth2_states(project_id)] == [credential_id]


async def test_one_lease_holder_at_a_time_until_the_lease_runs_out(
    store: SQLStore, clock: FakeClock
) -> None:
    credential_id = await oauth2_credential(store, clock)
    until = clock.now() + timedelta(seconds=15)
    first = await store.take_oauth2_lease(credential_id, "a", until)
    assert first is not None and first.secrets.refresh_token == "rt-0123456789"
    assert await store.take_oauth2_lease(credential_id, "b", until) is None
    await store.release_oauth2_lease(credential_id, "b")  # not b's to give back
    assert await store.take_oauth2_lease(credential_id, "b", until) is None
    clock.advance(16)  # a died holding it
    assert await store.take_oauth2_lease(credential_id, "b", clock.now() + timedelta(seconds=15))
    await store.save_oauth2_tokens(
        credential_id, OAuth2Secrets("client-secret", "at-new-0123456"), None, clock.now()
    )
    assert await store.take_oauth2_lease(credential_id, "c", clock.now()) is not None
    await store.set_oauth2_status(credential_id, OAuth2Status.NEEDS_REAUTHORIZATION, "revoked")
    state = await store.get_oauth2_state(credential_id)
    assert (state.status, state.problem) == (OAuth2Status.NEEDS_REAUTHORIZATION, "revoked")
    assert await store.take_oauth2_lease(credential_id, "d", clock.now()) is not None


async def test_an_authorization_is_taken_once_and_not_after_it_expired(
    store: SQLStore, clock: FakeClock
) -> None:
    credential_id = await oauth2_credential(store, clock)
    kept = OAuth2Authorization(
        credential_id, "session", "v" * 43, "https://f/cb", clock.now() + timedelta(minutes=10)
    )
    await store.put_oauth2_authorization("d1", kept)
    assert await store.take_oauth2_authorization("d1") == kept
    assert await store.take_oauth2_authorization("d1") is None
    await store.put_oauth2_authorization("d2", kept)
    clock.advance(minutes=10)
    assert await store.take_oauth2_authorization("d2") is None


async def test_deleting_the_credential_deletes_its_oauth2_rows(
    store: SQLStore, clock: FakeClock
) -> None:
    credential_id = await oauth2_credential(store, clock)
    kept = OAuth2Authorization(
        credential_id, "session", "v" * 43, "https://f/cb", clock.now() + timedelta(minutes=10)
    )
    await store.put_oauth2_authorization("d1", kept)
    await store.delete_credential(credential_id)
    assert await store.take_oauth2_authorization("d1") is None
    with pytest.raises(NotFoundError):
        await store.get_oauth2_state(credential_id)
