"""Fixtures that give every conformance test a fresh store on each backend.

SQLite: a new file in the test's tmp_path. PostgreSQL: a database per test module on the
server at 127.0.0.1:5432 (override with FULMEN_TEST_DATABASE_URL), created and dropped here,
and a fresh schema per test inside it (set as the connection's search_path), which is much
cheaper than a database per test. When the server cannot be reached the PostgreSQL cases are
skipped, except in CI (``CI`` set), where they fail: a green CI must have run them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from fulmen.store import SQLStore, open_store
from fulmen_testing.clock import FakeClock

SERVER_URL = os.environ.get(
    "FULMEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
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


def _server_unreachable(reason: str) -> None:
    message = f"PostgreSQL is not reachable at {SERVER_URL}: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI requires it)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A uniquely named database for this module; its URL."""
    try:
        admin = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _server_unreachable(str(error).strip().splitlines()[0])
    name = f"fulmen_test_{uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = SERVER_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'fulmen.db'}")
    database: str = request.getfixturevalue("pg_database")
    schema = f"t_{uuid4().hex[:16]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    options = quote(f"-csearch_path={schema}")
    return Backend(
        "postgres", f"{database}?options={options}", conninfo=f"{database}?options={options}"
    )


@pytest.fixture
async def store(backend: Backend, clock: FakeClock) -> AsyncIterator[SQLStore]:
    async with await open_store(backend.url, credential_key=KEY, clock=clock) as opened:
        yield opened
