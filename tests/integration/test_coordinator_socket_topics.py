"""The worker socket over weeks: a topic joined and left per run leaves nothing behind, a
rejoin right behind a leave is handled in order, and a stopping coordinator answers what was
asked before it sends the worker away (close code 1012) and refuses new sockets (503).

Real sockets on loopback, a coordinator served in this process (its socket's topic entries
are read through ``hub.sockets``), frames written raw so that a leave and a join can be sent
back to back, before the first is answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from fulmen.coordinator.socket import SocketPump
from fulmen.store import SQLStore, WebhookReply
from fulmen_testing.coordinator import Served, SocketWorld, seed, serve, sqlite_store, worker_token

pytestmark = pytest.mark.anyio

QUEUE = "worker:queue"
T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Wire:
    """A worker's end of the socket, frame by frame: :meth:`send` does not wait for the
    answer, :meth:`reply` waits for the answer to one ref."""

    ws: ClientConnection
    ref: int = 0
    join_refs: dict[str, str] = field(default_factory=dict)
    replies: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    async def open(cls, served: Served) -> Wire:
        url = f"{served.socket_url}/websocket?token={worker_token()}&vsn=2.0.0"
        return cls(await connect(url))

    async def send(self, topic: str, event: str, payload: Any) -> str:
        self.ref += 1
        ref = str(self.ref)
        if event == "phx_join":
            self.join_refs[topic] = ref
        await self.ws.send(json.dumps([self.join_refs.get(topic), ref, topic, event, payload]))
        return ref

    async def reply(self, ref: str) -> tuple[str, Any]:
        async with asyncio.timeout(10):
            while ref not in self.replies:
                frame = await self.ws.recv()
                if isinstance(frame, str):
                    _join, got, _topic, event, payload = json.loads(frame)
                    if event == "phx_reply":
                        self.replies[got] = (payload["status"], payload["response"])
        return self.replies.pop(ref)

    async def call(self, topic: str, event: str, payload: Any) -> tuple[str, Any]:
        return await self.reply(await self.send(topic, event, payload))


class World(SocketWorld):
    async def claimed_on(self, wire: Wire) -> tuple[str, str]:
        """A new run, claimed on ``wire``: (topic, run token)."""
        run_id = await self.enqueue()
        status, reply = await wire.call(
            QUEUE, "claim", {"demand": 1, "languages": ["python"], "worker_name": None}
        )
        assert status == "ok" and [run["id"] for run in reply["runs"]] == [run_id]
        return f"run:{run_id}", reply["runs"][0]["token"]

    def pump(self) -> SocketPump:
        [pump] = self.served.coordinator.hub.sockets
        assert isinstance(pump, SocketPump)
        return pump


class GatedStarts:
    """The store, except that once ``armed``, ``start_run`` waits at a gate the test opens:
    a ``run:start`` held in flight."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self.armed = False
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def start_run(self, run_id: str, **options: Any) -> Any:
        if self.armed:
            self.reached.set()
            await self.opened.wait()
        return await self._store.start_run(run_id, **options)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        yield store


@pytest.fixture
async def world(store: SQLStore) -> AsyncIterator[World]:
    seeded = await seed(store)
    async with serve(store) as served:
        yield World(store, served, seeded)


async def test_topics_left_or_refused_leave_nothing_behind_on_a_long_lived_socket(
    world: World,
) -> None:
    wire = await Wire.open(world.served)
    assert (await wire.call(QUEUE, "phx_join", {}))[0] == "ok"
    for n in range(40):
        topic, token = await world.claimed_on(wire)
        assert await wire.call(topic, "phx_join", {"token": token}) == ("ok", {})
        assert (await wire.call(topic, "fetch:plan", {}))[0] == "ok"
        assert await wire.call(topic, "phx_leave", {}) == ("ok", {})
        assert (await wire.call(f"nowhere:{n}", "phx_join", {}))[0] == "error"
        assert (await wire.call(topic, "phx_join", {"token": "forged"}))[0] == "error"
    # the last refusal is sent from its topic's task just before the entry goes: poll
    assert await settled(lambda: world.pump().topics, {QUEUE}) == {QUEUE}
    await wire.ws.close()


async def settled(probe: Callable[[], T], expected: T, timeout: float = 5.0) -> T:
    """``probe()`` once it gives ``expected``, or its last value after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := probe()) != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return value


async def test_a_join_sent_right_behind_a_leave_is_handled_after_it(world: World) -> None:
    wire = await Wire.open(world.served)
    assert (await wire.call(QUEUE, "phx_join", {}))[0] == "ok"
    topic, token = await world.claimed_on(wire)
    assert await wire.call(topic, "phx_join", {"token": token}) == ("ok", {})
    for _ in range(20):
        leave = await wire.send(topic, "phx_leave", {})
        join = await wire.send(topic, "phx_join", {"token": token})
        assert await wire.reply(leave) == ("ok", {})
        assert await wire.reply(join) == ("ok", {})
        status, plan = await wire.call(topic, "fetch:plan", {})
        assert status == "ok" and plan["id"] == topic.removeprefix("run:")
    assert world.pump().topics == {QUEUE, topic}
    await wire.ws.close()


async def test_a_drain_answers_what_was_asked_then_sends_the_worker_away(
    store: SQLStore,
) -> None:
    seeded = await seed(store)
    gated = GatedStarts(store)
    async with serve(gated) as served:  # type: ignore[arg-type]
        world = World(store, served, seeded)
        wire = await Wire.open(served)
        assert (await wire.call(QUEUE, "phx_join", {}))[0] == "ok"
        topic, token = await world.claimed_on(wire)
        assert await wire.call(topic, "phx_join", {"token": token}) == ("ok", {})
        gated.armed = True
        asked = await wire.send(topic, "run:start", {"versions": {}})
        async with asyncio.timeout(10):
            await gated.reached.wait()
        draining = asyncio.get_running_loop().create_task(served.coordinator.hub.drain())
        with pytest.raises(InvalidStatus) as refused:  # no new socket meanwhile
            await Wire.open(served)
        assert refused.value.response.status_code == 503
        assert not draining.done()  # the start is still being stored
        gated.opened.set()
        assert await wire.reply(asked) == ("ok", None)
        assert (await store.get_run(topic.removeprefix("run:"))).run.state == "started"
        async with asyncio.timeout(10):
            await wire.ws.wait_closed()
            await draining
        assert wire.ws.close_code == 1012


async def test_a_webhook_waiting_for_its_run_answers_pending_when_the_coordinator_drains(
    store: SQLStore,
) -> None:
    seeded = await seed(store, reply=WebhookReply.AFTER_COMPLETION)
    async with (
        serve(store, webhook_response_timeout=3600.0) as served,
        httpx2.AsyncClient(base_url=served.base_url, timeout=30) as http,
    ):
        posted = asyncio.get_running_loop().create_task(
            http.post(f"/i/{seeded.webhook_id}", json={"n": 1})
        )
        async with asyncio.timeout(10):
            while not (await store.list_runs()).items:
                await asyncio.sleep(0.01)  # the run is enqueued; its webhook now waits
            await served.coordinator.hub.drain()
            response = await posted
    assert response.status_code == 202
    assert response.json()["state"] == "pending"
