"""Fixtures that give every conformance test a fresh store on each backend.

SQLite: a new file in the test's tmp_path. PostgreSQL: a database per test module on the
server at 127.0.0.1:5432 (override with FULMEN_TEST_DATABASE_URL), created and dropped here,
and a fresh schema per test inside it (set as the connection's search_path), which is much
cheaper than a database per test. When the server cannot be reached the PostgreSQL cases are
skipped, except in CI (``CI`` set), where they fail: a green CI must have run them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fulmen.store import SQLStore, open_store
from fulmen_testing.clock import FakeClock
from fulmen_testing.coordinator import pg_database as fresh_pg_database
from fulmen_testing.coordinator import pg_schema_url

KEY = bytes(range(32))
BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    """Where a test's store lives, so that a test can open more stores on the same data."""

    name: str
    url: str
    #: For PostgreSQL: a plain connection string to the test's schema, for raw checks.
    conninfo: str | None = None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A uniquely named database for this module; its URL."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'fulmen.db'}")
    url = pg_schema_url(request.getfixturevalue("pg_database"))
    return Backend("postgres", url, conninfo=url)


@pytest.fixture
async def store(backend: Backend, clock: FakeClock) -> AsyncIterator[SQLStore]:
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as opened:
        yield opened
