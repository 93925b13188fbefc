"""What the runner costs: creating a worker, an HTTP trigger's round trip, a cron tick's lateness.

A runner is served in this process by uvicorn on 127.0.0.1 (an ephemeral port, a temporary
state directory) and driven over real HTTP:

- **create**: ``POST /workers`` (JSON) until the ``201``: validation, the sealed config and
  the row on disk, a sandboxed process forked, the script loaded, ``ready`` received.
- **fetch**: ``GET /workers/{id}/fetch/...`` answered by the worker's ``fetch``, sequential,
  as a client sees it (HTTP, the channel to the worker and back).
- **cron**: how late ``tasks`` starts in the worker after its fire time. The runner's clock is
  shifted so that a minute boundary is a moment away, then the worker prints its own wall
  clock when ``tasks`` begins. Prints figures only.

``--loop`` picks the event loop of the runner (and of this client, in the same process): uvloop,
``fulmen runner``'s default, or asyncio (``FULMEN_EVENT_LOOP=asyncio``). It also prints the
process's CPU per fetch.

    .venv/bin/python bench/runner.py [--creates 20] [--fetches 1000] [--ticks 20]
        [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import httpx2
import uvicorn

from fulmen import cron
from fulmen.config import RunnerSettings
from fulmen.runner.app import bind, build_app
from fulmen.runner.auth import ApiAuth
from fulmen.runner.service import Runner

FETCH = "async def fetch(request, rnr):\n    return {'path': request.path}\n"
TICK = "import time\n\nasync def tasks(rnr):\n    print('tick', repr(time.time()))\n"


class ShiftedClock:
    """Wall-clock time plus an offset the bench moves, so a fire time can be made near."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.2f} ms"


async def creates(http: httpx2.AsyncClient, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        reply = await http.post("/workers", json={"script": FETCH, "run_on_create": False})
        times.append(time.perf_counter() - started)
        assert reply.status_code == 201, reply.text
        assert (await http.delete(f"/workers/{reply.json()['id']}")).status_code == 204
    return times


async def fetches(http: httpx2.AsyncClient, count: int) -> list[float]:
    worker = (await http.post("/workers", json={"script": FETCH})).json()["id"]
    times = []
    for i in range(count):
        started = time.perf_counter()
        reply = await http.get(f"/workers/{worker}/fetch/item/{i}")
        times.append(time.perf_counter() - started)
        assert reply.status_code == 200
    return times


async def ticks(
    runner: Runner, http: httpx2.AsyncClient, clock: ShiftedClock, n: int
) -> list[float]:
    made = await http.post("/workers", json={"script": TICK, "schedule": "* * * * *",
                                             "run_on_create": False})  # fmt: skip
    worker = made.json()["id"]
    spec = cron.parse("* * * * *")
    late = []
    for sample in range(n):
        real = datetime.now(UTC)
        boundary = (real + clock.offset).replace(second=0, microsecond=0) + timedelta(minutes=1)
        clock.offset = boundary - real - timedelta(seconds=0.2)  # the fire is 0.2 s away
        due_real = (boundary - clock.offset).timestamp()
        runner.scheduler.set(worker, spec, clock.now())
        record = await runner.logbook.wait_for(worker, _unseen_tick)
        record["seen"] = sample
        late.append(float(record["line"].split()[1]) - due_real)
    return late


def _unseen_tick(record: dict[str, object]) -> bool:
    return str(record["line"]).startswith("tick") and "seen" not in record


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as state:
        clock = ShiftedClock()
        opened: asyncio.Future[Runner] = asyncio.get_running_loop().create_future()
        settings = RunnerSettings(state_dir=state, port=0)
        auth = ApiAuth.from_settings(settings)
        app = build_app(settings, clock=clock, on_ready=opened.set_result, auth=auth)
        sock = bind("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        runner = await opened
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            headers = {"authorization": f"Bearer {auth.token}"}
            async with httpx2.AsyncClient(base_url=url, timeout=60, headers=headers) as http:
                created = await creates(http, args.creates)
                cpu = time.process_time()
                fetched = await fetches(http, args.fetches)
                cpu_per_fetch = (time.process_time() - cpu) / args.fetches
                late = await ticks(runner, http, clock, args.ticks)
        finally:
            server.should_exit = True
            await task
            sock.close()
    print(f"sandbox isolation: {runner.isolation}; event loop: {args.loop}")
    print(f"create ({args.creates}): p50 {ms(created, 0.5)}, p99 {ms(created, 0.99)}, "
          f"mean {statistics.mean(created) * 1000:.2f} ms")  # fmt: skip
    rate = len(fetched) / sum(fetched)
    print(f"HTTP trigger round trip ({args.fetches}): p50 {ms(fetched, 0.5)}, "
          f"p99 {ms(fetched, 0.99)}, {rate:.0f} req/s sequential, "
          f"CPU {cpu_per_fetch * 1e6:.0f} us per fetch (runner and client)")  # fmt: skip
    print(f"cron tick lateness ({args.ticks}): p50 {ms(late, 0.5)}, p99 {ms(late, 0.99)}, "
          f"max {max(late) * 1000:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--fetches", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    arguments = parser.parse_args()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
