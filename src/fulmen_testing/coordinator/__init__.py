"""Shared pieces of the coordinator tests: keys, a seeded workflow, a real
coordinator serving on loopback, and PostgreSQL databases (skipped locally when no server
answers, failed in CI, as tests/conformance does)."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote
from uuid import uuid4

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from psycopg import sql

from fulmen import keys as keyring
from fulmen.config import CoordinatorSettings, Secret
from fulmen.coordinator import Coordinator, build_app, build_coordinator
from fulmen.coordinator.api.auth import mint
from fulmen.plan import Edge, Job, Options
from fulmen.store import (
    DataclipType,
    EnqueueRequest,
    NewCredential,
    NewDataclip,
    Project,
    SQLStore,
    TriggerType,
    WebhookReply,
    Workflow,
    WorkflowTrigger,
    open_store,
)
from fulmen.tokens import mint_run_token, mint_worker_token

__all__ = [
    "CREDENTIAL_KEY",
    "NO_PYTHON_INDEX",
    "NO_REGISTRY",
    "OUTBOUND_ALLOW",
    "Seeded",
    "Served",
    "SocketWorld",
    "api_token",
    "keys",
    "pg_database",
    "seed",
    "serve",
    "settings",
    "socket_world",
    "worker_token",
]

CREDENTIAL_KEY = bytes(range(32))
PG_SERVER = os.environ.get(
    "FULMEN_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@functools.cache
def keys() -> keyring.GeneratedKeys:
    return keyring.generate()


#: The npm registry of a test coordinator unless a test serves one (fulmen_testing.npm_registry):
#: the discard port on loopback, where nothing listens, so that no test asks the real registry.
NO_REGISTRY: Final = "http://127.0.0.1:9/"
#: The Python package index of a test coordinator unless a test serves one
#: (fulmen_testing.python_index), for the same reason: no test asks the real PyPI.
NO_PYTHON_INDEX: Final = "http://127.0.0.1:9/simple/"

#: What a test coordinator may reach at URLs a project admin chose, as an operator allows its
#: internal services with ``FULMEN_OUTBOUND_ALLOW``: the tests' webhook receivers
#: (fulmen_testing.alerts) and OAuth2 providers (fulmen_testing.oauth2_provider) listen on
#: 127.0.0.1, and some name it ``localhost``. The tests of the policy itself pass their own.
OUTBOUND_ALLOW: Final = ("127.0.0.1", "localhost")


def settings(**overrides: Any) -> CoordinatorSettings:
    generated = keys()
    overrides.setdefault("npm_registry", NO_REGISTRY)
    overrides.setdefault("python_index", NO_PYTHON_INDEX)
    # …nor runs npm for the dashboard's code editor (the browser tests build it themselves)
    overrides.setdefault("dashboard_editor_build", False)
    overrides.setdefault("outbound_allow", OUTBOUND_ALLOW)
    return CoordinatorSettings(
        secret=Secret("WORKER_SECRET", generated.worker_secret),
        private_key=Secret("WORKER_RUNS_PRIVATE_KEY", generated.private_key),
        **overrides,
    )


def worker_token(worker_id: str = "test-worker", *, secret: str | None = None) -> str:
    return mint_worker_token(
        secret or keys().worker_secret, worker_id, now=datetime.now(UTC).timestamp()
    )


async def api_token(store: SQLStore, name: str = "tests") -> str:
    token, row = mint(name)
    await store.put_api_token(row)
    return token


@dataclass(frozen=True)
class Seeded:
    project_id: str
    workflow_id: str
    webhook_id: str
    credential_id: str
    job_ids: tuple[str, ...]


async def seed(
    store: SQLStore,
    *,
    jobs: tuple[tuple[str, str], ...] = (
        ("first", "fn(lambda s: s)"),
        ("second", "fn(lambda s: s)"),
    ),
    reply: WebhookReply | None = None,
    cron: str | None = None,
    timezone: str | None = None,
) -> Seeded:
    """A project with a credential and a workflow: a webhook trigger (and a cron trigger when
    ``cron`` is given) followed by a chain of jobs, the first using the credential."""
    project = await store.create_project(Project(id=str(uuid4()), name="tests"))
    credential = await store.put_credential(
        NewCredential(str(uuid4()), project.id, "api", {"user": "alice", "password": "s3cr3t-pw"})
    )
    job_ids = tuple(str(uuid4()) for _ in jobs)
    webhook = WorkflowTrigger(str(uuid4()), TriggerType.WEBHOOK, webhook_reply=reply)
    triggers = [webhook]
    if cron is not None:
        triggers.append(
            WorkflowTrigger(str(uuid4()), TriggerType.CRON, cron_expression=cron, timezone=timezone)
        )
    edges = [Edge(str(uuid4()), job_ids[0], source_trigger_id=t.id) for t in triggers]
    edges += [
        Edge(str(uuid4()), later, source_job_id=earlier, condition="on_job_success")
        for earlier, later in pairwise(job_ids)
    ]
    workflow = Workflow(
        id=str(uuid4()),
        project_id=project.id,
        name="chain",
        jobs=tuple(
            Job(
                id=job_id,
                name=name,
                body=body,
                adaptor="common",
                credential_id=credential.id if index == 0 else None,
            )
            for index, (job_id, (name, body)) in enumerate(zip(job_ids, jobs, strict=True))
        ),
        triggers=tuple(triggers),
        edges=tuple(edges),
    )
    await store.create_workflow(workflow)
    return Seeded(project.id, workflow.id, webhook.id, credential.id, job_ids)


@dataclass
class Served:
    coordinator: Coordinator
    base_url: str
    #: The app served (its routes, for the tests that go through each of them).
    app: FastAPI | None = None

    @property
    def socket_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/worker"


@asynccontextmanager
async def serve(
    store: SQLStore, *, services: bool = False, clock: Any = None, **overrides: Any
) -> AsyncIterator[Served]:
    """A coordinator on ``store``, served by uvicorn on a free loopback port."""
    extra = {"clock": clock} if clock is not None else {}
    coordinator = build_coordinator(settings(**overrides), store, **extra)
    app = build_app(coordinator, services=services)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:  # uvicorn offers no event to await
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(coordinator, f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def sqlite_store(path: str, clock: Any = None) -> AsyncIterator[SQLStore]:
    extra = {"clock": clock} if clock is not None else {}
    async with await open_store(f"sqlite:///{path}", credential_key=CREDENTIAL_KEY, **extra) as s:
        yield s


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the test server; its URL. Skipped (failed in CI) when unreachable."""
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        message = f"PostgreSQL is not reachable at {PG_SERVER}: {str(error).strip()[:200]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    name = f"fulmen_coord_{uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = PG_SERVER.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def pg_schema_url(database: str) -> str:
    """A fresh schema in ``database``, as a URL whose connections use it."""
    schema = f"t_{uuid4().hex[:16]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{database}?options={quote(f'-csearch_path={schema}')}"


class RawWorker:
    """A worker that speaks raw Phoenix V2 frames, for tests that send what a real worker
    would not (bad tokens, bad payloads). ``call`` sends one request and returns its reply's
    ``(status, response)``; a binary reply's response is its bytes."""

    def __init__(self, connection: Any) -> None:
        self._ws = connection
        self._ref = 0
        self._join_refs: dict[str, str] = {}

    @classmethod
    @asynccontextmanager
    async def connect(cls, socket_url: str, token: str | None = None) -> AsyncIterator[RawWorker]:
        from websockets.asyncio.client import connect

        query = f"?token={token if token is not None else worker_token()}&vsn=2.0.0"
        async with connect(socket_url + "/websocket" + query) as ws:
            yield cls(ws)

    async def join(self, topic: str, payload: dict[str, Any]) -> tuple[str, Any]:
        self._ref += 1
        self._join_refs[topic] = str(self._ref)
        return await self._send(str(self._ref), topic, "phx_join", payload)

    async def call(self, topic: str, event: str, payload: Any) -> tuple[str, Any]:
        self._ref += 1
        return await self._send(self._join_refs.get(topic), topic, event, payload)

    async def _send(
        self, join_ref: str | None, topic: str, event: str, payload: Any
    ) -> tuple[str, Any]:
        import json

        from fulmen.phoenix.frames import BinaryReply, Sender, decode_binary

        ref = str(self._ref)
        await self._ws.send(json.dumps([join_ref, ref, topic, event, payload]))
        async with asyncio.timeout(10):
            while True:
                frame = await self._ws.recv()
                if isinstance(frame, bytes):
                    reply = decode_binary(frame, sender=Sender.SERVER)
                    if isinstance(reply, BinaryReply) and reply.ref == ref:
                        return reply.status, reply.response
                    continue
                _join, got_ref, _topic, got_event, got = json.loads(frame)
                if got_ref == ref and got_event == "phx_reply":
                    return got["status"], got["response"]

    async def closed(self) -> int | None:
        """Wait until the server has closed the socket; its close code."""
        await self._ws.wait_closed()
        code: int | None = self._ws.close_code
        return code

    async def push(self) -> tuple[str, str, Any]:
        """The next thing the server pushes: (topic, event, payload)."""
        import json

        async with asyncio.timeout(10):
            while True:
                frame = await self._ws.recv()
                if isinstance(frame, str):
                    _join, ref, topic, event, payload = json.loads(frame)
                    if ref is None:
                        return topic, event, payload


#: What a Fulmen coordinator lists in its ``worker:queue`` join answer.
ACCEPTS: Final = [
    "claim:fetch",
    "phx_join:fetch",
    "phx_join:reports",
    "run:batch_logs",
    "run:refuse",
    "run:reports",
]


@dataclass
class SocketWorld:
    """A seeded SQLite store served on loopback, for tests that speak raw frames to it."""

    store: SQLStore
    served: Served
    seeded: Seeded

    async def enqueue(self) -> str:
        enqueued = await self.store.enqueue(
            EnqueueRequest(
                self.seeded.workflow_id,
                input=NewDataclip(DataclipType.HTTP_REQUEST, {"n": 1}),
                trigger_id=self.seeded.webhook_id,
                options=Options(run_timeout_ms=60_000),
            )
        )
        return enqueued.run_id

    async def claimed(self, worker: RawWorker) -> tuple[str, str]:
        """Enqueue a run, claim it and join its channel: (run id, topic)."""
        run_id, entry = await self.claim(worker)
        topic = f"run:{run_id}"
        assert await worker.join(topic, {"token": entry["token"]}) == ("ok", {})
        return run_id, topic

    async def claim(self, worker: RawWorker, **extra: Any) -> tuple[str, dict[str, Any]]:
        """Enqueue a run and claim it (with ``extra`` in the claim): (run id, its entry in
        the claim's answer)."""
        run_id = await self.enqueue()
        assert await worker.join("worker:queue", {}) == ("ok", {"accepts": ACCEPTS})
        status, reply = await worker.call(
            "worker:queue",
            "claim",
            {"demand": 1, "languages": ["python"], "worker_name": None, **extra},
        )
        assert status == "ok" and [r["id"] for r in reply["runs"]] == [run_id], reply
        entry: dict[str, Any] = reply["runs"][0]
        return run_id, entry

    async def rejoin(self, worker: RawWorker, run_id: str, **extra: Any) -> Any:
        """Join ``run:<id>`` again with a fresh run token (and ``extra`` in the payload), as a
        worker does after reconnecting; the join's answer."""
        private = keyring.load_private_key(keys().private_key)
        token = mint_run_token(private, run_id, now=self.served.coordinator.now(), run_timeout=60)
        status, answer = await worker.join(f"run:{run_id}", {"token": token, **extra})
        assert status == "ok", answer
        return answer


@asynccontextmanager
async def socket_world(tmp_path: Path) -> AsyncIterator[SocketWorld]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        seeded = await seed(store)
        async with serve(store) as served:
            yield SocketWorld(store, served, seeded)
