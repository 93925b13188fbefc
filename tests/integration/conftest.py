"""Fixtures shared by the integration tests that speak raw frames to a served coordinator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fulmen_testing.coordinator import SocketWorld, socket_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SocketWorld]:
    """A seeded SQLite store served on loopback (a test module may seed its own)."""
    async with socket_world(tmp_path) as opened:
        yield opened
