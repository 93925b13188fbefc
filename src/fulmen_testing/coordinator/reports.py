"""A run's reports as Fulmen's worker sends them to a coordinator that takes ``run:reports``
(contract/reports.py), for the tests that send them as raw frames."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

from fulmen_testing.coordinator import SocketWorld

__all__ = ["TS", "a_whole_frame", "a_whole_run", "batch", "line", "messages"]

TS = "1760000000000000"


def line(text: str, stamp: int, step_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "message": [text],
        "source": "R/T",
        "level": "info",
        "timestamp": str(int(TS) + stamp),
    }
    if step_id is not None:
        out["step_id"] = step_id
    return out


def batch(run_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {"event": "run:batch_logs", "payload": {"run_id": run_id, "logs": list(lines)}}


def a_whole_run(run_id: str, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trivial run as Fulmen's worker sends it to a coordinator that takes ``run:reports``:
    its start in one frame, its end in another."""
    step_id, output_id = str(uuid4()), str(uuid4())
    start = {
        "reports": [
            batch(run_id, line("Memory limit: 500mb", 0), line("Timeout: 300s", 1)),
            {"event": "run:start", "payload": {"versions": {"worker": "0"}, "timestamp": TS}},
            batch(run_id, line("Versions: …", 2)),
            {
                "event": "step:start",
                "payload": {"step_id": step_id, "job_id": job_id, "timestamp": TS},
            },
            batch(run_id, line("hello from the job", 3, step_id)),
        ]
    }
    end = {
        "reports": [
            {
                "event": "step:complete",
                "payload": {
                    "step_id": step_id,
                    "job_id": job_id,
                    "reason": "success",
                    "output_dataclip_id": output_id,
                    "output_dataclip": json.dumps({"data": {"x": 1}}),
                    "timestamp": TS,
                },
            },
            batch(run_id, line("Run complete with status: success", 4)),
            {
                "event": "run:complete",
                "payload": {"reason": "success", "final_dataclip_id": output_id, "timestamp": TS},
            },
        ]
    }
    return start, end


async def messages(world: SocketWorld, run_id: str) -> list[str]:
    return [entry.message for entry in (await world.store.get_logs(run_id)).items]


def a_whole_frame(run_id: str, job_id: str) -> list[dict[str, Any]]:
    """A trivial run as one frame's reports: a short run, sent as Fulmen's worker sends it."""
    start, end = a_whole_run(run_id, job_id)
    reports: list[dict[str, Any]] = start["reports"] + end["reports"]
    return reports
