"""End to end, issue 14: a job logs a line every 5 ms while its coordinator is restarted ten
times, by SIGKILL and SIGTERM in turn, and the run's stored log is exactly the lines the job
printed, each once, in order.

The worker reaches the coordinator through a :class:`Switch` (one address, as behind a load
balancer). Before each restart the switch loses the replies of the coordinator on duty, so
the batch of lines in flight is stored but never answered: a restart could catch that moment
by chance, here every restart does. The worker rejoins and sends that batch again, now to
the new process, which must recognise it (store/events.py) while the old one may still be
finishing. Each new coordinator process is started while the one it replaces still serves,
on the same data, so that a restart costs the worker one reconnect rather than a process
start-up.

* **SQLite**: each process on the same data directory, so on one database file.
* **PostgreSQL**: two coordinators on one database at every restart, the worker moving
  from one to the other.

The job waits at a :class:`~fulmen_testing.e2e.Gate`: it prints until the test lets it through, so
lines are flowing at every restart however long the restarts take.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fulmen_testing.coordinator import pg_database
from fulmen_testing.e2e import Api, Coordinator, Gate, WorkerProcess, _keys, until
from fulmen_testing.e2e.switch import Switch

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(360)]

RESTARTS = 10
#: Lines stored between two restarts (about 0.2 s of the job's output).
PROGRESS = 40
#: A reply on a run channel (the run's only requests meanwhile are its batches of lines).
LOG_REPLY = rb'"run:[0-9a-f-]+","phx_reply"'
#: The API's largest page of log lines.
LOG_PAGE = 1000
#: The whole test, start-up and ten restarts included.
BOUND = 300.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of its own on the local server; skipped when there is none (not in CI)."""
    with pg_database() as url:
        yield url


def emitting_job(gate: Gate) -> str:
    """Prints ``line <n>`` every 5 ms until the gate lets it through, then ``emitted <n>``."""
    return (
        "import socket, time\n"
        "@fn\n"
        "def emit(state):\n"
        f"    with socket.create_connection(('127.0.0.1', {gate.port})) as sock:\n"
        "        sock.sendall(b'emit\\n')\n"
        "        sock.setblocking(False)\n"
        "        n = 0\n"
        "        while True:\n"
        "            print(f'line {n}')\n"
        "            n += 1\n"
        "            time.sleep(0.005)\n"
        "            try:\n"
        "                if sock.recv(1):\n"
        "                    break\n"
        "            except BlockingIOError:\n"
        "                pass\n"
        "    print(f'emitted {n}')\n"
        "    state['data'] = {'emitted': n}\n"
        "    return state\n"
    )


@dataclass
class Tail:
    """A run's stored log, read again only from the first page not read in full before."""

    run_id: str
    #: The lines of the pages before ``cursor``.
    done: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None

    async def lines(self, api: Api) -> list[dict[str, Any]]:
        """Every line stored now, in order."""
        while True:
            params: dict[str, Any] = {"limit": LOG_PAGE}
            if self.cursor:
                params["cursor"] = self.cursor
            page = await api.get(f"/api/runs/{self.run_id}/logs", **params)
            items: list[dict[str, Any]] = page["items"]
            if not page["next_cursor"]:
                return self.done + items
            self.done += items
            self.cursor = page["next_cursor"]

    async def grown(self, api: Api, by: int) -> None:
        """Until ``by`` more lines than now are stored."""
        goal = len(await self.lines(api)) + by

        async def count() -> int:
            return len(await self.lines(api))

        await until(count, lambda n: n >= goal, timeout=30, what=f"{goal} lines stored")


async def emit_through_restarts(
    make: Callable[[], Coordinator], gate: Gate, stack: AsyncExitStack
) -> tuple[dict[str, Any], int, list[dict[str, Any]]]:
    """Run the emitting job on a worker behind a :class:`Switch` and replace the coordinator
    process ``RESTARTS`` times meanwhile, alternating SIGKILL and SIGTERM, each time with a
    batch stored whose reply is lost. ``make`` gives a coordinator on the same data. The
    finished run, how many lines the job printed, and the run's log."""

    made: list[Coordinator] = []
    spare: asyncio.Task[Coordinator] | None = None

    async def started() -> Coordinator:
        made.append(coordinator := make())
        await coordinator.start()
        return coordinator

    async def stop_all() -> None:
        if spare is not None and not spare.done():
            spare.cancel()
            await asyncio.gather(spare, return_exceptions=True)
        for coordinator in made:
            await coordinator.stop()

    stack.push_async_callback(stop_all)
    active = await started()
    switch = await stack.enter_async_context(Switch(active.port))
    settings = {**gate.worker_settings, "WORKER_LIGHTNING_SERVICE_URL": switch.socket_url}
    worker, token = await asyncio.gather(
        WorkerProcess.start(active, settings=settings), active.api_token()
    )
    stack.push_async_callback(worker.kill)
    async with api_of(active, token) as api:
        _, hook = await api.workflow({"emit": emitting_job(gate)}, [])
        run_id = await api.hook(hook, {})
    await gate.reached("emit")
    tail = Tail(run_id)
    spare = asyncio.create_task(started())
    for turn in range(RESTARTS):
        async with api_of(active, token) as api:
            await tail.grown(api, PROGRESS)
        # From here the worker hears nothing back: the batch it sends next (or has just sent)
        # is stored, its reply lost, and it goes again to the next coordinator.
        switch.lose_replies()
        await switch.lost(LOG_REPLY)
        replacement = await spare
        if turn + 1 < RESTARTS:
            spare = asyncio.create_task(started())
        switch.point(replacement.port)
        if turn % 2 == 0:
            await active.kill()
        else:
            await active.stop()
        active = replacement
    async with api_of(active, token) as api:
        await tail.grown(api, PROGRESS)  # delivering again after the last restart
        gate.release("emit")
        run = await api.finished(run_id, timeout=60)
        lines = await Tail(run_id).lines(api)  # all of it, read afresh
        final = await api.dataclip(run["final_dataclip_id"])
    assert worker.output.count(r"joined worker:queue") > RESTARTS
    return run, final["data"]["emitted"], lines


def check(run: dict[str, Any], emitted: int, lines: list[dict[str, Any]]) -> None:
    """The stored log is what the job printed: every line once, none added, in order."""
    assert run["state"] == "success", run
    assert emitted > PROGRESS * (RESTARTS + 1)
    printed = [line["message"] for line in lines if line["source"] == "JOB"]
    expected = [f"line {n}" for n in range(emitted)] + [f"emitted {emitted}"]
    extra, missing = Counter(printed) - Counter(expected), Counter(expected) - Counter(printed)
    assert (dict(extra), dict(missing)) == ({}, {})
    assert printed == expected
    copies = Counter((line["timestamp"], line["source"], line["message"]) for line in lines)
    assert [key for key, times in copies.items() if times > 1] == []


async def test_sqlite_ten_restarts_store_every_line_once_in_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with asyncio.timeout(BOUND), AsyncExitStack() as stack:
        gate = await stack.enter_async_context(Gate())
        run, emitted, lines = await emit_through_restarts(
            lambda: Coordinator(data, _keys()), gate, stack
        )
    check(run, emitted, lines)


async def test_postgres_two_coordinators_store_every_line_once_in_order(
    tmp_path: Path, pg_url: str
) -> None:
    """The worker moves from one coordinator process to another at each restart, both on
    the same database, while the one it leaves may still be writing."""
    shared = {
        "FULMEN_DATABASE_URL": pg_url,
        "FULMEN_CREDENTIAL_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    names = (f"c{n}" for n in range(RESTARTS + 3))
    async with asyncio.timeout(BOUND), AsyncExitStack() as stack:
        gate = await stack.enter_async_context(Gate())
        run, emitted, lines = await emit_through_restarts(
            lambda: Coordinator(tmp_path / next(names), _keys(), shared), gate, stack
        )
    check(run, emitted, lines)


@asynccontextmanager
async def api_of(coordinator: Coordinator, token: str) -> AsyncIterator[Api]:
    """An :class:`Api` on one coordinator."""
    async with httpx2.AsyncClient(base_url=coordinator.base_url, timeout=30) as http:
        yield Api(http, token)
