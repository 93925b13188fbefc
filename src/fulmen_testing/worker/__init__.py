"""Helpers for the worker's integration tests: keys, a scripted Lightning, a running worker."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from fulmen import backoff
from fulmen.config import Secret, WorkerSettings
from fulmen.execution import JavaScript
from fulmen.keys import GeneratedKeys, generate, load_private_key
from fulmen.runtime.entry import PRELOAD
from fulmen.sandbox import Zygote
from fulmen.worker import Worker, prepare
from fulmen.worker.target import Resolver, resolve
from fulmen_testing.worker.lightning import Lightning, Recorded, ScriptedRun

__all__ = [
    "Lightning",
    "Recorded",
    "ScriptedRun",
    "job",
    "keys",
    "plan",
    "private_key",
    "running",
    "scenario",
    "settings_for",
]

T = TypeVar("T")


@functools.cache
def keys() -> GeneratedKeys:
    """One secret and key pair for the whole test session (RSA generation is slow-ish)."""
    return generate()


@functools.cache
def private_key() -> RSAPrivateKey:
    return load_private_key(keys().private_key)


def scenario(body: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run an async test body with an overall time limit."""

    async def main() -> T:
        async with asyncio.timeout(timeout):
            return await body()

    return asyncio.run(main())


def job(job_id: str, body: str, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "body": body, "adaptor": "common", **extra}


def plan(
    *jobs: dict[str, Any], edges: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Lightning plan starting at the first job, with the input dataclip ``d``."""
    return {
        "dataclip_id": "d",
        "starting_node_id": jobs[0]["id"],
        "triggers": [],
        "jobs": list(jobs),
        "edges": edges or [],
        **extra,
    }


def settings_for(server: Lightning, **overrides: Any) -> WorkerSettings:
    settings = WorkerSettings(
        lightning_url=server.url,
        secret=Secret("WORKER_SECRET", keys().worker_secret),
        public_key=Secret("WORKER_LIGHTNING_PUBLIC_KEY", keys().public_key),
        capacity=1,
        backoff_min=0.05,
        backoff_max=0.2,
        port=0,
        health_host="127.0.0.1",
        message_timeout=10.0,
    )
    return dataclasses.replace(settings, **overrides)


def quick_reconnects() -> Iterator[float]:
    return backoff.delays(0.02, 0.1)


@asynccontextmanager
async def running(
    settings: WorkerSettings,
    *,
    resolver: Resolver = resolve,
    ready: bool = True,
    javascript: JavaScript | None = None,
) -> AsyncIterator[Worker]:
    """A worker with its own zygote, running until the block ends (then drained); with
    ``javascript``, it runs JavaScript jobs too, as on a host with Node.js."""
    read_only = [str(javascript.repo.root)] if javascript is not None else []
    async with await Zygote.start(preload=PRELOAD, read_only=read_only) as zygote:
        worker = Worker(
            settings,
            prepare(settings),
            zygote=zygote,
            javascript=javascript,
            reconnect=quick_reconnects,
            resolver=resolver,
        )
        task = asyncio.create_task(worker.run())
        await worker.started.wait()
        if ready:
            await worker.queue.wait_ready()
        try:
            yield worker
        finally:
            worker.stop()
            await task
