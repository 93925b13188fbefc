"""``/ui/events`` over HTTP: a signed-in page hears that a run was enqueued and that its run
ended, a stranger is refused, and a coordinator stopping with a tab open stops at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
import uvicorn

from fulmen.cli.server import _Server
from fulmen.coordinator import build_app, build_coordinator
from fulmen.store import SQLStore
from fulmen_testing.coordinator import (
    RawWorker,
    api_token,
    seed,
    settings,
    socket_world,
    sqlite_store,
)

pytestmark = pytest.mark.anyio

TS = "1760000000000000"
#: How long a notice may take to arrive: far more than the feed's 100 ms window.
PROMPT = 5.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def sign_in(http: httpx2.AsyncClient, store: SQLStore) -> None:
    origin = str(http.base_url).rstrip("/")
    answer = await http.post(
        "/ui/login", data={"token": await api_token(store)}, headers={"Origin": origin}
    )
    assert answer.status_code == 303, answer.text


async def event_names(response: httpx2.Response) -> AsyncIterator[str]:
    """Each event's name as it arrives (comments, the heartbeat, are skipped)."""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            yield line.removeprefix("event: ")


async def next_event(events: AsyncIterator[str]) -> str:
    async with asyncio.timeout(PROMPT):
        return await anext(events)


async def claim_and_join(worker: RawWorker) -> tuple[str, str]:
    """Claim the one queued run and join its channel, as a worker does: (run id, topic)."""
    assert (await worker.join("worker:queue", {}))[0] == "ok"
    claim = {"demand": 1, "languages": ["python"], "worker_name": None}
    status, reply = await worker.call("worker:queue", "claim", claim)
    assert status == "ok" and len(reply["runs"]) == 1, reply
    run_id, token = reply["runs"][0]["id"], reply["runs"][0]["token"]
    topic = f"run:{run_id}"
    assert await worker.join(topic, {"token": token}) == ("ok", {})
    return run_id, topic


async def test_a_page_hears_a_run_enqueued_by_webhook_and_its_end(tmp_path: Path) -> None:
    async with (
        socket_world(tmp_path) as world,
        httpx2.AsyncClient(base_url=world.served.base_url) as http,
        RawWorker.connect(world.served.socket_url) as worker,
    ):
        await sign_in(http, world.store)
        async with http.stream("GET", "/ui/events") as every:
            assert every.status_code == 200
            assert every.headers["content-type"].startswith("text/event-stream")
            runs_list = event_names(every)
            assert await next_event(runs_list) == "hello"
            hook = await http.post(f"/i/{world.seeded.webhook_id}", json={"n": 1})
            assert hook.status_code in (200, 201, 202), hook.text
            assert await next_event(runs_list) == "change"

        run_id, topic = await claim_and_join(worker)
        async with http.stream("GET", f"/ui/events?run={run_id}") as one:
            run_page = event_names(one)
            assert await next_event(run_page) == "hello"
            started = {"versions": {}, "timestamp": TS}
            assert await worker.call(topic, "run:start", started) == ("ok", None)
            assert await next_event(run_page) == "change"
            done = {"reason": "success", "error_type": None, "error_message": None, "timestamp": TS}
            assert await worker.call(topic, "run:complete", done) == ("ok", None)
            assert await next_event(run_page) == "change"
        assert (await world.store.get_run(run_id)).run.state.value == "success"


async def test_a_stranger_gets_401_not_a_stream(tmp_path: Path) -> None:
    async with (
        socket_world(tmp_path) as world,
        httpx2.AsyncClient(base_url=world.served.base_url) as http,
    ):
        answer = await http.get("/ui/events")
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        http.cookies.set("fulmen_session", "made-up")
        assert (await http.get("/ui/events?run=x")).status_code == 401


async def test_a_stop_signal_with_a_tab_listening_stops_the_server_at_once(
    tmp_path: Path,
) -> None:
    """uvicorn waits for open responses before it stops (no graceful timeout here): the
    stream must end when the coordinator drains, or this hangs."""
    async with sqlite_store(str(tmp_path / "fulmen.db")) as store:
        await seed(store)
        coordinator = build_coordinator(settings(), store)
        config = uvicorn.Config(
            build_app(coordinator, services=False), host="127.0.0.1", port=0, lifespan="on"
        )
        server = _Server(config, coordinator)
        serving = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:  # uvicorn offers no event to await
            assert not serving.done()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await sign_in(http, store)
            async with http.stream("GET", "/ui/events") as stream:
                events = event_names(stream)
                assert await next_event(events) == "hello"
                server._on_signal(signal.SIGTERM)
                async with asyncio.timeout(PROMPT):
                    assert [name async for name in events] == []  # the stream ended
                    await serving
        assert coordinator.hub.changes.subscribers == 0
