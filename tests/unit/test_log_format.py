"""Log lines as a pipeline reads them: one JSON object per line, labelled with what they are
about (fulmen.logcontext, fulmen.cli.bootstrap)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from fulmen.cli.bootstrap import configure_logging
from fulmen.errors import ConfigError
from fulmen.logcontext import bind, bound


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(logging.INFO, "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_one_object_with_what_it_is_about(json_lines: io.StringIO) -> None:
    log = logging.getLogger("fulmen.worker.run")
    log.info("outside any run")
    with bound(run_id="r-1", worker="w-1"):
        log.warning("run %s: %s", "r-1", 'said "hi"\nthen left')
    [outside, inside] = lines(json_lines)
    assert outside["message"] == "outside any run"
    assert "run_id" not in outside and "worker" not in outside
    assert inside["level"] == "warning" and inside["logger"] == "fulmen.worker.run"
    assert inside["message"] == 'run r-1: said "hi"\nthen left'
    assert (inside["run_id"], inside["worker"]) == ("r-1", "w-1")
    assert str(inside["ts"]).endswith("+00:00")


def test_tasks_carry_their_own_run_and_step(json_lines: io.StringIO) -> None:
    log = logging.getLogger("fulmen.worker")

    async def run(run_id: str, step_id: str) -> None:
        bind(run_id=run_id)
        await asyncio.sleep(0)
        bind(step_id=step_id)
        await asyncio.sleep(0)
        log.info("working on %s", run_id)

    async def main() -> None:
        bind(worker="w-9")
        await asyncio.gather(run("a", "a-1"), run("b", "b-1"))
        log.info("idle")

    asyncio.run(main())
    by_message = {line["message"]: line for line in lines(json_lines)}
    assert by_message["working on a"]["step_id"] == "a-1"
    assert by_message["working on b"]["step_id"] == "b-1"
    assert by_message["working on b"]["worker"] == "w-9"
    assert "run_id" not in by_message["idle"]


def test_an_exception_is_one_field_of_its_line(json_lines: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("fulmen").exception("it failed")
    [line] = lines(json_lines)
    assert "ValueError: boom" in str(line["exception"])


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="text, json"):
        configure_logging(logging.INFO, "xml")
