"""Collections (issue 19) against a real coordinator: ``fulmen server`` on loopback, on SQLite in
a temporary data directory, or on PostgreSQL with ``--postgres`` (a fresh database on the
server at ``FULMEN_TEST_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432``,
dropped afterwards), driven over HTTP with an API token as a job's adaptor would be.

Cases (``--cases``, comma-separated, run in the order given, on one collection):

* ``bulk``: ``--items`` items upserted with ``POST /collections/<name>``, 10,000 a request;
* ``put``: ``--puts`` single ``PUT /collections/<name>/<key>``, ``--concurrency`` at a time;
* ``get``: the whole collection in one streamed ``GET /collections/<name>?limit=…``, with
  the coordinator's peak RSS growth while it streamed;
* ``pages``: the whole collection a page (the default 1000 items) at a time, by cursor;
* ``one``: single ``GET /collections/<name>/<key>``, ``--concurrency`` at a time;
* ``job``: the latency of a job's get, with a ``fulmen worker`` (its sandbox with the default
  network policy, so the get goes through the worker's collections gateway): ``--runs``
  one-step runs that do nothing against as many that do one ``collections.get``, posted one
  after another as webhooks; the note has each kind's median claim → complete from the
  stored timestamps and what one get adds (the rate is the get runs', end to end).

Printed per case: the rate, the wall time, and the coordinator's CPU time per item (user +
system from ``/proc``: steadier than the rate on a shared machine). A case is a function of
:data:`CASES` taking the :class:`Bench`; a new measurement (a job's ``get`` through a worker,
say) is one more entry.

Run: ``.venv/bin/python bench/collections_bench.py [--items 100000] [--runs 50]
[--cases bulk,put,get,pages,one,job] [--postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx2

from fulmen import keys as keyring
from fulmen_testing.e2e import (
    Api,
    Coordinator,
    WorkerProcess,
    cpu_seconds,
    until,
    vm_kib,
)

#: Items per bulk request (the issue's figure).
BULK = 10_000
#: Bytes of each value: a small JSON record, as a job keeps a cursor or a lookup row.
VALUE = '{"id": 12345, "name": "Ada Lovelace", "site": "north-7", "seen": "2026-01-31"}'


@dataclass
class Bench:
    """What every case gets: the served coordinator, a client with an API token, the
    collection's name, and the sizes asked for."""

    server: Coordinator
    http: httpx2.AsyncClient
    name: str
    items: int
    puts: int
    concurrency: int
    project_id: str = ""
    runs: int = 50

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid


@dataclass
class Figures:
    what: str
    count: int
    seconds: float
    cpu: float
    note: str = ""

    def line(self) -> str:
        rate = self.count / self.seconds if self.seconds else 0.0
        per_item = self.cpu * 1e6 / self.count if self.count else 0.0
        return (
            f"{self.what:<8}{self.count:>10}{rate:>12.0f}{self.seconds:>10.2f}"
            f"{per_item:>12.1f}  {self.note}"
        )


async def measured(bench: Bench, what: str, count: int, work: Awaitable[str]) -> Figures:
    """``work``'s wall and coordinator CPU time; ``work`` returns a note to print."""
    cpu = cpu_seconds(bench.pid)
    started = time.perf_counter()
    note = await work
    return Figures(what, count, time.perf_counter() - started, cpu_seconds(bench.pid) - cpu, note)


async def bulk(bench: Bench) -> Figures:
    async def work() -> str:
        for start in range(0, bench.items, BULK):
            chunk = range(start, min(start + BULK, bench.items))
            items = [{"key": f"item-{i:07}", "value": VALUE} for i in chunk]
            answer = await bench.http.post(f"/collections/{bench.name}", json={"items": items})
            assert answer.status_code == 200 and answer.json()["upserted"] == len(items), answer
        return f"{BULK} items a request"

    return await measured(bench, "bulk", bench.items, work())


async def put(bench: Bench) -> Figures:
    async def lane(keys: range) -> None:
        for i in keys:
            answer = await bench.http.put(
                f"/collections/{bench.name}/put-{i}", json={"value": VALUE}
            )
            assert answer.status_code == 200 and answer.json()["upserted"] == 1, answer

    async def work() -> str:
        lanes = [range(n, bench.puts, bench.concurrency) for n in range(bench.concurrency)]
        await asyncio.gather(*(lane(keys) for keys in lanes))
        return f"{bench.concurrency} at a time"

    return await measured(bench, "put", bench.puts, work())


async def get(bench: Bench) -> Figures:
    total = await _count(bench)
    before = vm_kib(bench.pid)
    peak = before

    async def work() -> str:
        nonlocal peak
        size = 0
        params = {"limit": str(total)}
        async with bench.http.stream("GET", f"/collections/{bench.name}", params=params) as answer:
            assert answer.status_code == 200
            async for chunk in answer.aiter_bytes():
                size += len(chunk)
                peak = max(peak, vm_kib(bench.pid))
        return f"{size / 1e6:.1f} MB streamed; coordinator RSS +{(peak - before) / 1024:.1f} MiB"

    return await measured(bench, "get", total, work())


async def pages(bench: Bench) -> Figures:
    async def work() -> str:
        cursor: str | None = None
        count = 0
        while True:
            params = {"cursor": cursor} if cursor else {}
            answer = await bench.http.get(f"/collections/{bench.name}", params=params)
            body = answer.json()
            count += len(body["items"])
            if (cursor := body["cursor"]) is None:
                return f"{count} items, 1000 a page"

    return await measured(bench, "pages", await _count(bench), work())


async def one(bench: Bench) -> Figures:
    count = min(bench.puts, bench.items) or bench.puts

    async def lane(keys: range) -> None:
        for i in keys:
            key = quote(f"item-{i:07}" if bench.items else f"put-{i}", safe="")
            answer = await bench.http.get(f"/collections/{bench.name}/{key}")
            assert answer.status_code == 200, answer

    async def work() -> str:
        lanes = [range(n, count, bench.concurrency) for n in range(bench.concurrency)]
        await asyncio.gather(*(lane(keys) for keys in lanes))
        return f"{bench.concurrency} at a time"

    return await measured(bench, "one", count, work())


async def job(bench: Bench) -> Figures:
    worker = await WorkerProcess.start(
        bench.server, settings={"WORKER_LOG_LEVEL": "warn"}, wait=False
    )
    try:
        api = Api(bench.http, "")
        api.headers = {}  # the client sends the API token already
        await until(
            lambda: api.get("/health/ready"),
            lambda ready: ready.get("workers") == 1,
            what="the worker joining",
        )
        setter = await _workflow(bench, f'collections.set("{bench.name}", "job-key", 1)\n')
        await api.finished(await api.hook(setter, {}))
        medians: dict[str, float] = {}
        started = 0.0
        for kind, body in (
            ("nothing", "fn(lambda s: s)\n"),
            ("get", f'collections.get("{bench.name}", "job-key")\n'),
        ):
            hook = await _workflow(bench, body)
            for _ in range(3):  # warm-up: the worker's spares, the coordinator's caches
                await api.finished(await api.hook(hook, {}))
            started = time.perf_counter()
            done = [await api.finished(await api.hook(hook, {})) for _ in range(bench.runs)]
            assert all(run["state"] == "success" for run in done), done
            medians[kind] = statistics.median(
                (
                    datetime.fromisoformat(run["finished_at"])
                    - datetime.fromisoformat(run["claimed_at"])
                ).total_seconds()
                * 1000
                for run in done
            )
        note = (
            f"claim → complete median: nothing {medians['nothing']:.1f} ms, one get "
            f"{medians['get']:.1f} ms: a get adds {medians['get'] - medians['nothing']:.1f} ms"
        )
        return Figures("job", bench.runs, time.perf_counter() - started, 0.0, note)
    finally:
        await worker.terminate()


async def _workflow(bench: Bench, body: str) -> str:
    """A one-job workflow behind a webhook in the bench's project; the trigger's id."""
    suffix = uuid.uuid4().hex[:8]
    document = {
        "name": f"bench-{suffix}",
        "jobs": [{"id": f"j-{suffix}", "name": "job", "adaptor": "common", "body": body}],
        "triggers": [{"id": f"t-{suffix}", "type": "webhook"}],
        "edges": [{"source_trigger_id": f"t-{suffix}", "target_job_id": f"j-{suffix}"}],
    }
    made = await bench.http.post(f"/api/projects/{bench.project_id}/workflows", json=document)
    assert made.status_code == 201, made.text
    return f"t-{suffix}"


#: Every measurement, by the name ``--cases`` gives it.
CASES: dict[str, Callable[[Bench], Awaitable[Figures]]] = {
    "bulk": bulk,
    "put": put,
    "get": get,
    "pages": pages,
    "one": one,
    "job": job,
}


async def _count(bench: Bench) -> int:
    answer = await bench.http.get(f"/api/collections/{bench.name}")
    count: int = answer.json()["item_count"]
    return count


@asynccontextmanager
async def database(postgres: bool) -> AsyncIterator[dict[str, str]]:
    """The coordinator's database settings: a fresh PostgreSQL database, or none (SQLite in
    the data directory)."""
    if not postgres:
        yield {}
        return
    from fulmen_testing.coordinator import pg_database  # psycopg only when asked for

    with pg_database() as url:
        yield {"FULMEN_DATABASE_URL": url}


async def main(args: argparse.Namespace) -> None:
    keys = keyring.generate()
    async with database(args.postgres) as settings:
        with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp:
            server = Coordinator(Path(tmp) / "data", keys, settings=settings, log="warning")
            await server.start()
            try:
                token = await server.api_token()
                headers = {"Authorization": f"Bearer {token}"}
                async with httpx2.AsyncClient(
                    base_url=server.base_url, headers=headers, timeout=600
                ) as http:
                    project = (await http.post("/api/projects", json={"name": "bench"})).json()
                    made = await http.post(
                        f"/api/projects/{project['id']}/collections", json={"name": "bench"}
                    )
                    assert made.status_code == 201, made.text
                    bench = Bench(
                        server,
                        http,
                        "bench",
                        args.items,
                        args.puts,
                        args.concurrency,
                        project_id=project["id"],
                        runs=args.runs,
                    )
                    store = "PostgreSQL" if args.postgres else "SQLite"
                    print(f"collections on {store}; values of {len(VALUE)} bytes")
                    print(f"{'case':<8}{'items':>10}{'items/s':>12}{'s':>10}{'CPU µs/item':>12}")
                    for name in args.cases:
                        print((await CASES[name](bench)).line(), flush=True)
            finally:
                await server.stop()


def _cases(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"cases are {', '.join(CASES)}, not {unknown[0]!r}")
    return chosen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="items of bulk [100000]")
    parser.add_argument("--puts", type=int, default=2000, help="single puts and gets [2000]")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at a time [8]")
    parser.add_argument("--runs", type=int, default=50, help="runs of each kind for job [50]")
    parser.add_argument(
        "--cases",
        type=_cases,
        default=_cases("bulk,put,get,pages,one,job"),
        help="[bulk,put,get,pages,one,job]",
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    asyncio.run(main(parser.parse_args()))
