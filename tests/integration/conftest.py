"""Fixtures shared by the integration tests: a coordinator served to raw frames, and a store
URL on each database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fulmen_testing.coordinator import SocketWorld, pg_database, pg_schema_url, socket_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SocketWorld]:
    """A seeded SQLite store served on loopback (a test module may seed its own)."""
    async with socket_world(tmp_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    """A PostgreSQL database of the module's own; each test takes a fresh schema in it."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's URL: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fulmen.db'}"
    return pg_schema_url(request.getfixturevalue("pg"))
