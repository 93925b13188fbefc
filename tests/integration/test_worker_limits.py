"""Limits from the plan's options end a run with the reason the spec names (§7.2): the run
timeout and the memory limit kill the child; the active step and the run say why."""

from __future__ import annotations

from fulmen_testing.worker import (
    Lightning,
    ScriptedRun,
    job,
    keys,
    plan,
    private_key,
    running,
    scenario,
    settings_for,
)

SLOW = plan(
    job("first", "fn(lambda s: s)\n"),
    job("slow", "import time\nfn(lambda s: time.sleep(30))\n"),
    edges=[{"id": "e", "source_job_id": "first", "target_job_id": "slow"}],
    options={"run_timeout_ms": 700},
)
GREEDY = plan(
    job("greedy", "fn(lambda s: {**s, 'big': bytearray(400 * 1024 * 1024)})\n"),
    options={"run_memory_limit_mb": 64},
)


def test_timeout_and_out_of_memory_end_runs_with_kill() -> None:
    async def body() -> None:
        server = Lightning(secret=keys().worker_secret, private_key=private_key())
        async with server, running(settings_for(server, capacity=2)):
            server.enqueue(ScriptedRun("slow", SLOW))
            server.enqueue(ScriptedRun("greedy", GREEDY))
            slow = await server.completed("slow")
            greedy = await server.completed("greedy")
        assert slow == {
            "reason": "kill",
            "error_type": "TimeoutError",
            "error_message": "Workflow failed to return within 700ms",
        }
        assert greedy == {
            "reason": "kill",
            "error_type": "OOMError",
            "error_message": "Run exceeded maximum memory usage",
        }
        events = server.of_run("slow")
        notes = [e.payload["message"][0] for e in events if e.event == "run:log"][:2]
        assert notes == ["Memory limit: 500mb", "Timeout: 0.7s"]  # before run:start (§5.11)
        names = [e.event for e in events]
        assert names.index("run:log") < names.index("run:start")
        steps = [e.payload for e in events if e.event == "step:complete"]
        assert [(s["job_id"], s["reason"]) for s in steps] == [
            ("first", "success"),
            ("slow", "kill"),
        ]
        assert steps[1]["error_type"] == "TimeoutError"
        assert "timestamp" not in steps[1] and "mem" not in steps[1]  # the error path (§7.1)
        greedy_notes = [
            e.payload["message"][0] for e in server.of_run("greedy") if e.event == "run:log"
        ]
        assert greedy_notes[0] == "Memory limit: 64mb"

    scenario(body)
