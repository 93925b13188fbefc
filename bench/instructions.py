"""Instructions per run in the worker or the coordinator, counted by valgrind's callgrind:
figures that repeat to a fraction of a percent on a machine whose CPU times vary by 15%.

``bench/e2e.py`` and ``bench/coordinator.py`` print CPU time, which is what a run costs but
moves with whatever else the machine does. Here the same system runs (``fulmen server`` and
``fulmen worker`` on loopback, a one-step workflow whose webhook answers once its run has
ended, so runs go one at a time), with one of the two processes under callgrind. After a
warm-up the counters are zeroed, ``--runs`` runs are made, and the counters dumped: the
instructions that process executed per run, in user space (the kernel's share, system calls
and page faults, is not counted; ``bench/e2e.py`` has it). The process is about fifty times
slower under callgrind, so latencies here mean nothing. The sandboxed children are not
traced. ``--loop`` picks both processes' event loop (``FULMEN_EVENT_LOOP``; uvloop, their
default, or asyncio). Figures only; needs ``valgrind`` (Debian's package).

    .venv/bin/python bench/instructions.py [--process worker|coordinator] [--runs 200]
        [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx2

import fulmen_testing.e2e as harness
from fulmen import keys as keyring
from fulmen_testing.e2e import Api, Coordinator, WorkerProcess, until

JOB = "fn(lambda s: {**s, 'data': {'n': 1}})\n"
WARM_UP = 20


async def main(process: str, runs: int, loop: str) -> None:
    keys = keyring.generate()
    with tempfile.TemporaryDirectory(prefix="fulmen-bench-") as tmp:
        out = Path(tmp) / "callgrind"
        traced = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
        plain = harness.FULMEN
        harness.FULMEN = [*traced, *plain] if process == "coordinator" else plain
        server = Coordinator(
            Path(tmp) / "data", keys, log="warning", settings={"FULMEN_EVENT_LOOP": loop}
        )
        await server.start()
        harness.FULMEN = [*traced, *plain] if process == "worker" else plain
        worker = await WorkerProcess.start(
            server, settings={"WORKER_LOG_LEVEL": "warn", "FULMEN_EVENT_LOOP": loop}, wait=False
        )
        harness.FULMEN = plain
        try:
            async with httpx2.AsyncClient(base_url=server.base_url, timeout=300) as http:
                api = Api(http, await server.api_token())
                await until(
                    lambda: api.get("/health/ready"),
                    lambda ready: ready.get("workers") == 1,
                    timeout=300,
                    what="the worker joining",
                )
                _flow, hook = await api.workflow(
                    {"a": JOB}, [], name="bench", reply="after_completion"
                )
                for i in range(WARM_UP + runs):
                    if i == WARM_UP:
                        callgrind_control("-z")
                    response = await http.post(f"/i/{hook}", json={"i": i})
                    assert response.status_code == 201, response.text
                callgrind_control("-d")
        finally:
            await worker.terminate()
            await server.stop()
        dumps = sorted(Path(tmp).glob("callgrind.*.1"))
        assert len(dumps) == 1, dumps
        total = program_total(dumps[0])
    print(f"{process}: {total / runs / 1e6:.3f} M instructions per run ({runs} runs, {loop})")


def callgrind_control(flag: str) -> None:
    subprocess.run(["callgrind_control", flag], check=True, capture_output=True)


def program_total(dump: Path) -> int:
    annotated = subprocess.run(
        ["callgrind_annotate", str(dump)], check=True, capture_output=True, text=True
    ).stdout
    found = re.search(r"^([\d,]+) .*PROGRAM TOTALS", annotated, re.MULTILINE)
    assert found is not None, annotated[:500]
    return int(found.group(1).replace(",", ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--process", choices=("worker", "coordinator"), default="worker")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    asyncio.run(main(args.process, args.runs, args.loop))
