"""``fulmen up``'s first admin (issue 18): made once, on a store without users, with a random
password that checks and is printed by the caller; it takes over the API token the data
directory holds (which keeps working for ``fulmen deploy``); a store with a user gets none.
Its making is in the audit trail, by the host's user."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulmen.cli.up.datadir import first_admin, prepare
from fulmen.coordinator.core import database_url
from fulmen.coordinator.passwords import check
from fulmen.store import AuditFilter, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_the_first_start_makes_an_instance_admin_once(tmp_path: Path) -> None:
    data = await prepare(tmp_path / ".fulmen")
    password = await first_admin(data, "Ops@Example.org")
    assert password is not None and len(password) >= 20
    assert await first_admin(data, "ops@example.org") is None
    assert await first_admin(await prepare(tmp_path / ".fulmen"), "other@localhost") is None
    async with await open_store(database_url(data.settings())) as store:
        (admin,) = await store.list_users()
        assert (admin.email, admin.instance_admin) == ("ops@example.org", True)
        assert (await check(admin.password_hash, password)).ok
        (token,) = await store.list_api_tokens()
        assert token.user_id == admin.id  # the api-token file is the admin's now
        (made,) = (await store.list_audit(AuditFilter(action="user"))).items
        assert (made.action, made.actor.kind, made.target.id) == ("user.created", "cli", admin.id)


async def test_admin_at_localhost_is_an_address(tmp_path: Path) -> None:
    data = await prepare(tmp_path / ".fulmen")
    assert await first_admin(data, "admin@localhost") is not None
