"""The latency of a job's collections get (issue 19): ``fulmen server`` and ``fulmen worker``
(its sandbox with the default network policy, so the get goes through the worker's
collections gateway) as subprocesses on loopback, a trivial one-step run that does nothing
vs the same run doing one ``collections.get`` of a small value. Figures only, no assertions.

Runs are posted one after another as webhooks, each once the one before has ended, so
nothing queues. For each kind it prints the median and p95 of the run's claim → complete (the work
of the run: its child, the get through the gateway to the coordinator and back) and of
enqueue → complete, from the stored timestamps, in ms; ``get`` is the difference of the
medians: what one get adds to a run. (``bench/collections.py``, the store's set and get
throughput, is the collections API's own bench.)

Run: ``.venv/bin/python bench/collections_job.py [--runs N]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from pathlib import Path

import httpx2
from e2e import cuts, latencies_ms  # bench/e2e.py: the same figures, the same way

from fulmen import keys as keyring
from fulmen_testing.e2e import Api, Coordinator, WorkerProcess, until

JOBS = {
    "trivial": "fn(lambda s: {**s, 'data': {'n': 1}})\n",
    "get": 'collections.get("bench", "k1")\n',
}


async def workflow(api: Api, project_id: str, body: str) -> str:
    """A one-job workflow behind a webhook; the trigger id."""
    suffix = uuid.uuid4().hex[:8]
    document = {
        "name": f"bench-{suffix}",
        "jobs": [{"id": f"j-{suffix}", "name": "job", "adaptor": "common", "body": body}],
        "triggers": [{"id": f"t-{suffix}", "type": "webhook"}],
        "edges": [{"source_trigger_id": f"t-{suffix}", "target_job_id": f"j-{suffix}"}],
    }
    created = await api.http.post(
        f"/api/projects/{project_id}/workflows", json=document, headers=api.headers
    )
    assert created.status_code == 201, created.text
    return f"t-{suffix}"


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp:
        server = Coordinator(Path(tmp) / "data", keyring.generate(), log="warning")
        await server.start()
        worker: WorkerProcess | None = None
        try:
            token, worker = await asyncio.gather(
                server.api_token(),
                WorkerProcess.start(server, settings={"WORKER_LOG_LEVEL": "warn"}, wait=False),
            )
            async with httpx2.AsyncClient(base_url=server.base_url, timeout=120) as http:
                api = Api(http, token)
                await until(
                    lambda: api.get("/health/ready"),
                    lambda ready: ready.get("workers") == 1,
                    what="the worker joining",
                )
                made = await http.post("/api/projects", json={"name": "b"}, headers=api.headers)
                project_id = made.json()["id"]
                made = await http.post(
                    f"/api/projects/{project_id}/collections",
                    json={"name": "bench"},
                    headers=api.headers,
                )
                assert made.status_code == 201, made.text
                setter = await workflow(api, project_id, 'collections.set("bench", "k1", 1)\n')
                await api.finished(await api.hook(setter, {}))
                print(f"{runs} runs each, one at a time; ms")
                print(f"{'job':<10}{'work50':>8}{'work95':>8}{'all50':>8}{'all95':>8}")
                medians = {}
                for kind, body in JOBS.items():
                    hook = await workflow(api, project_id, body)
                    for _ in range(3):  # warm-up
                        await api.finished(await api.hook(hook, {}))
                    done = [await api.finished(await api.hook(hook, {})) for _ in range(runs)]
                    assert all(run["state"] == "success" for run in done), done
                    work = latencies_ms(done, since="claimed_at")
                    total = latencies_ms(done)
                    medians[kind] = statistics.median(work)
                    w50, w95, _ = cuts(work)
                    a50, a95, _ = cuts(total)
                    print(f"{kind:<10}{w50:8.1f}{w95:8.1f}{a50:8.1f}{a95:8.1f}", flush=True)
                print(f"one get adds {medians['get'] - medians['trivial']:.1f} ms (median)")
        finally:
            if worker is not None:
                await worker.terminate()
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
