"""Shared pieces of the operator-controls tests (issue 8): a store on either backend, a
served coordinator with an API client, a real Fulmen worker for it, and polling with a
deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from fulmen.config import Secret, WorkerSettings
from fulmen.store import SQLStore, open_store
from fulmen.worker import Worker
from fulmen_testing.coordinator import (
    CREDENTIAL_KEY,
    Seeded,
    Served,
    api_token,
    keys,
    pg_database,
    pg_schema_url,
    serve,
)
from fulmen_testing.worker import running

__all__ = ["BACKENDS", "Site", "fulmen_worker", "site", "store_at", "until"]

BACKENDS = ["sqlite", "postgres"]
T = TypeVar("T")


@asynccontextmanager
async def store_at(
    backend: str, tmp_path: Path, clock: Any = None, **options: Any
) -> AsyncIterator[tuple[SQLStore, str]]:
    """A fresh store on ``backend`` and its URL (PostgreSQL: a database of its own)."""
    extra = {"clock": clock} if clock is not None else {}
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fulmen.db'}"
        async with await open_store(url, credential_key=CREDENTIAL_KEY, **extra, **options) as s:
            yield s, url
        return
    with pg_database() as database:
        url = pg_schema_url(database)
        async with await open_store(url, credential_key=CREDENTIAL_KEY, **extra, **options) as s:
            yield s, url


@dataclass
class Site:
    store: SQLStore
    served: Served
    http: httpx2.AsyncClient
    token: str
    seeded: Seeded | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def api(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        """Call the REST API; the JSON answer, after checking its status."""
        response = await self.http.request(method, path, headers=self.auth, **kwargs)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json() if response.content else None


@asynccontextmanager
async def site(store: SQLStore, **overrides: Any) -> AsyncIterator[Site]:
    """A coordinator on ``store`` served on loopback, and an API client with a token."""
    token = await api_token(store)
    async with (
        serve(store, **overrides) as served,
        httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        yield Site(store, served, http, token)


def worker_settings(served: Served, **overrides: Any) -> WorkerSettings:
    generated = keys()
    settings = WorkerSettings(
        lightning_url=served.socket_url,
        secret=Secret("WORKER_SECRET", generated.worker_secret),
        public_key=Secret("WORKER_LIGHTNING_PUBLIC_KEY", generated.public_key),
        capacity=1,
        backoff_min=0.05,
        backoff_max=0.2,
        port=0,
        health_host="127.0.0.1",
        message_timeout=10.0,
    )
    return dataclasses.replace(settings, **overrides)


@asynccontextmanager
async def fulmen_worker(served: Served, **overrides: Any) -> AsyncIterator[Worker]:
    """A real Fulmen worker (sandboxed children and all) connected to ``served``."""
    async with running(worker_settings(served, **overrides)) as worker:
        yield worker


async def until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    what: str = "the condition",
) -> T:
    """Poll ``probe()`` until ``done`` holds for its value (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s; last: {value!r}")
        await asyncio.sleep(0.05)
