"""A worker's config values never reach its logs or the run history in plain text (issue
13): what its script prints, logs or raises with is masked (``***``) in ``logs/<id>.jsonl``,
in ``GET .../logs`` and ``.../runs``, and nowhere in the state directory (``runner.db`` and
its WAL included) holds the value; also after a restart, when the config comes from its
sealed record."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import PRINTS_CONFIG

pytestmark = pytest.mark.timeout(60)


def test_config_values_a_script_prints_are_masked_in_its_logs(tmp_path: Path) -> None:
    key, password = "KEY-" + secrets.token_hex(12), "PW-" + secrets.token_hex(12)
    config = {"api_key": key, "nested": {"password": password}}
    state = tmp_path / "state"

    async def main() -> None:
        async with served(state) as s:
            made = await s.create(PRINTS_CONFIG, name="leaky", config=config)
            await _ended(s, made["id"])  # the run at creation
            failed = await s.http.get("/workers/leaky/fetch")
            assert failed.status_code == 500 and key not in failed.text
            await s.runner.logbook.wait_for(made["id"], lambda r: "ValueError" in r["line"])
            lines = [r["line"] for r in (await s.http.get("/workers/leaky/logs")).json()]
            for expected in ("the key is ***", "nested: ***", "fetch sees ***"):
                assert expected in lines, lines
            assert any("ValueError: ***" in line for line in lines), lines
            runs = (await s.http.get("/workers/leaky/runs")).json()
            assert runs[0]["error"] == "RuntimeError: failed with ***"
        _nowhere(state, key, password)
        log_file = (state / "logs" / f"{made['id']}.jsonl").read_text()
        assert "the key is ***" in log_file
        async with served(state) as again:  # the config now comes from its sealed record
            run = await again.http.post("/workers/leaky/run")
            await _ended(again, made["id"], run.json()["run_id"])
            lines = [r["line"] for r in (await again.http.get("/workers/leaky/logs")).json()]
            assert lines.count("the key is ***") == 2
        _nowhere(state, key, password)

    asyncio.run(main())


async def _ended(s: Served, worker_id: str, run_id: int | None = None) -> None:
    """Until a run (this one, or any) of the worker has ended."""
    await s.runner.logbook.wait_for(
        worker_id,
        lambda r: r.get("event") == "run_ended" and run_id in (None, r.get("run_id")),
    )


def _nowhere(state: Path, *values: str) -> None:
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in values:
                assert value.encode() not in data, path
