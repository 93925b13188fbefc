"""End to end: a worker of capacity 2 under a burst of 10 webhooks never holds more than 2
runs. Each job waits at a gate until the test lets it through, one at a time, so at every
step the REST API can be asked what the coordinator has handed out; afterwards the stored
timestamps must show the same: no instant at which 3 runs were claimed and unfinished.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fulmen_testing.e2e import Gate, gated_job, system

pytestmark = pytest.mark.anyio

BURST = 10
CAPACITY = 2
IN_FLIGHT = ("claimed", "started")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def most_at_once(runs: list[dict[str, Any]]) -> int:
    """The most runs between ``claimed_at`` and ``finished_at`` at any instant (an end
    at the same instant as a claim counts first: the slot was free)."""
    edges: list[tuple[datetime, int]] = []
    for run in runs:
        edges.append((datetime.fromisoformat(run["claimed_at"]), +1))
        edges.append((datetime.fromisoformat(run["finished_at"]), -1))
    most = current = 0
    for _, step in sorted(edges):
        current += step
        most = max(most, current)
    return most


def holds(count: int, gate: Gate) -> bool:
    return len(gate.waiting) == count


async def test_capacity_holds_under_a_burst(tmp_path: Path) -> None:
    async with (
        Gate() as gate,
        system(tmp_path, capacity=CAPACITY, worker=gate.worker_settings) as (_, _, api),
    ):
        workflow_id, hook = await api.workflow({"wait": gated_job(gate, "run-{n}")}, [])
        posted = await asyncio.gather(*(api.hook(hook, {"n": n}) for n in range(BURST)))
        run_of = {f"run-{n}": run_id for n, run_id in enumerate(posted)}

        for released in range(BURST):
            # Once the run let through last is stored as finished, its slot is free: the
            # worker claims the next, whose job then comes to the gate.
            expected = min(CAPACITY, BURST - released)
            await gate.wait(partial(holds, expected), what=f"{expected} waiting")
            states = [run["state"] for run in await api.runs(workflow_id)]
            assert sum(state in IN_FLIGHT for state in states) == expected, states
            assert states.count("available") == BURST - released - expected, states
            name = gate.waiting[0]
            gate.release(name)
            await api.finished(run_of[name])

        runs = [await api.finished(run["id"]) for run in await api.runs(workflow_id)]
    assert [run["state"] for run in runs] == ["success"] * BURST
    assert len(gate.arrived) == BURST == len(set(gate.arrived))  # each run ran once
    assert most_at_once(runs) == CAPACITY
