"""``fulmen workers`` against a real runner on loopback, as a user meets it: the lines each
command prints, the token found where ``fulmen runner`` (or ``fulmen up``) left it, and every
refusal one line on stderr naming the runner's URL, never a traceback (issue 21)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner, Result

from fulmen.cli import cli
from fulmen.cli.workers import HEADER, RUNS_HEADER
from fulmen.runner.logbook import Record
from fulmen_testing.runner.harness import Served, served
from fulmen_testing.runner.scripts import ECHO

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

SECRET = "abc-config-value-4711"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    """A runner whose state is ``<data>/runner``, as a standalone ``fulmen runner`` keeps it
    with ``FULMEN_DATA_DIR=<data>``; the CLI is given only that and the runner's URL."""

    served: Served
    data: Path

    @property
    def url(self) -> str:
        return self.served.url

    def env(self, **more: str | None) -> dict[str, str | None]:
        base: dict[str, str | None] = {
            "FULMEN_DATA_DIR": str(self.data),
            "FULMEN_RUNNER_URL": self.url,
            "FULMEN_RUNNER_TOKEN": None,
            "FULMEN_RUNNER_TOKEN_FILE": None,
            "FULMEN_RUNNER_STATE_DIR": None,
            "FULMEN_RUNNER_API_TOKEN_FILE": None,
        }
        return {**base, **more}

    async def fulmen(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        """The command, in a thread (its HTTP client blocks; the runner serves on this loop)."""
        runner = CliRunner()
        return await anyio.to_thread.run_sync(
            lambda: runner.invoke(
                cli, ["workers", *args], env=self.env(**env), input=input, catch_exceptions=False
            )
        )

    async def logged(self, worker_id: str, event: str, **match: Any) -> Record:
        def wanted(record: Record) -> bool:
            return record.get("event") == event and all(
                record.get(k) == v for k, v in match.items()
            )

        async with asyncio.timeout(20):
            return await self.served.runner.logbook.wait_for(worker_id, wanted)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    data = tmp_path / "data"
    async with served(data / "runner") as s:
        yield Site(s, data)


def ok(result: Result) -> list[str]:
    """The lines on stdout of a command that succeeded and said nothing on stderr."""
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout.splitlines()


def refused(result: Result, status: int = 1) -> str:
    """The one line on stderr of a command that failed, with nothing on stdout."""
    assert result.exit_code == status, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.output
    return result.stderr.rstrip("\n")


async def test_a_worker_from_create_to_delete(site: Site, tmp_path: Path) -> None:
    script, config = tmp_path / "worker.py", tmp_path / "config.json"
    script.write_text(ECHO)
    config.write_text(f'{{"token": "{SECRET}"}}')
    made = ok(await site.fulmen(
        "create", str(script), "--name", "nightly", "--config", str(config),
        "--schedule", "*/5 * * * *", "--timezone", "Europe/Berlin", "--event", "orders.*",
    ))  # fmt: skip
    assert len(made) == 1 and made[0].startswith("worker nightly (")
    worker_id, said = made[0].removeprefix("worker nightly (").split("): ")
    assert said.startswith("created, ready, next run ")
    next_run = said.removeprefix("created, ready, next run ")
    upcoming = datetime.fromisoformat(next_run)
    assert upcoming.minute % 5 == 0 and upcoming > datetime.now(UTC)
    await site.logged(worker_id, "run_ended")  # tasks ran on create

    listed = ok(await site.fulmen("list"))
    assert listed[0] == "\t".join(HEADER)
    assert len(listed) == 2
    *fields, last_run, listed_next = listed[1].split("\t")
    assert fields == [worker_id, "nightly", "module", "ready", "*/5 * * * *"]
    assert datetime.fromisoformat(last_run) < upcoming and listed_next == next_run

    shown = ok(await site.fulmen("show", "NIGHTLY"))  # a name in another case, as names.py
    for line in (f"id: {worker_id}", "name: nightly", "state: ready",
                 "schedule: */5 * * * *", "timezone: Europe/Berlin", "events: orders.*",
                 "handlers: event, fetch, tasks", 'recent_runs: {"ok": 1}'):  # fmt: skip
        assert line in shown, shown

    started = ok(await site.fulmen("run", "nightly"))
    assert len(started) == 1 and started[0].startswith(f"worker nightly ({worker_id}): run ")
    run_id = int(started[0].split(": run ")[1].removesuffix(" started"))
    await site.logged(worker_id, "run_ended", run_id=run_id)

    runs = ok(await site.fulmen("runs", worker_id))
    assert runs[0] == "\t".join(RUNS_HEADER)
    assert [line.split("\t")[1::3] for line in runs[1:]] == [["manual", "ok"], ["create", "ok"]]
    assert runs[1].split("\t")[0] == str(run_id) and runs[1].endswith("\tok\t")

    logs = ok(await site.fulmen("logs", "nightly"))
    entries = [line.split("\t") for line in logs]
    assert all(len(entry) == 3 for entry in entries)
    assert ["stdout", "tasks ran create"] in [entry[1:] for entry in entries]
    assert ["stdout", "tasks ran manual"] in [entry[1:] for entry in entries]
    assert ["runner", "tasks ended: ok"] in [entry[1:] for entry in entries]
    last = entries[-1][0]
    assert ok(await site.fulmen("logs", "nightly", "--since", last)) == []
    assert ok(await site.fulmen("logs", "nightly", "--since", "1h")) == logs

    assert ok(await site.fulmen("restart", "nightly")) == [
        f"worker nightly ({worker_id}): restarted, ready"
    ]
    everything = "\n".join(listed + shown + runs + logs)
    assert SECRET not in everything  # the config never leaves the runner

    assert ok(await site.fulmen("delete", "nightly", "--purge-key")) == [
        f"worker nightly ({worker_id}): deleted; its key is destroyed"
    ]
    assert ok(await site.fulmen("list", "--no-header")) == []
    gone = refused(await site.fulmen("show", "nightly"), status=2)
    assert gone == "fulmen workers show: no worker is named 'nightly'"


async def test_config_and_script_from_standard_input_never_an_argument(
    site: Site, tmp_path: Path
) -> None:
    script = tmp_path / "w.py"
    script.write_text(ECHO)
    made = ok(await site.fulmen(
        "create", str(script), "--config", "-", "--no-run-on-create", input='{"k": 1}'
    ))  # fmt: skip
    assert made[0].endswith(": created, ready, no schedule")
    worker_id = made[0].removeprefix("worker ").split(":")[0]
    assert ok(await site.fulmen("runs", worker_id, "--no-header")) == []  # not run on create
    by_stdin = ok(await site.fulmen("create", "-", "--name", "piped", input=ECHO))
    assert by_stdin[0].startswith("worker piped (")

    both = refused(await site.fulmen("create", "-", "--config", "-"), status=2)
    assert both == "fulmen workers create: SCRIPT and --config cannot both be standard input"
    config = tmp_path / "list.json"
    config.write_text("[1, 2]")
    not_object = refused(await site.fulmen("create", str(script), "--config", str(config)), 2)
    assert not_object == (
        f"fulmen workers create: --config {config}: the config must be a JSON object, not list"
    )
    config.write_text("{nope")
    not_json = refused(await site.fulmen("create", str(script), "--config", str(config)), 2)
    assert not_json.startswith(f"fulmen workers create: --config {config}: not JSON: ")
    missing = refused(await site.fulmen("create", str(tmp_path / "nope.py")), status=2)
    assert missing == f"fulmen workers create: {tmp_path / 'nope.py'}: no such file"


async def test_purge_key_says_what_became_of_the_key(site: Site) -> None:
    """The same script and policy is the same identity: its key outlives one of them."""
    first = await site.served.create(ECHO, name="one", run_on_create=False)
    second = await site.served.create(ECHO, name="two", run_on_create=False)
    assert first["identity_id"] == second["identity_id"]
    assert ok(await site.fulmen("delete", "one", "--purge-key")) == [
        f"worker one ({first['id']}): deleted; its key is kept: worker two ({second['id']}) "
        "has the same identity"
    ]
    assert ok(await site.fulmen("delete", "two")) == [f"worker two ({second['id']}): deleted"]


async def test_the_runners_refusals_are_one_line_naming_it(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "w.py"
    script.write_text(ECHO)
    bad_cron = refused(await site.fulmen("create", str(script), "--schedule", "61 * * * *"))
    assert bad_cron.startswith("fulmen workers create: ")
    assert bad_cron.endswith(f" (the runner at {site.url})")
    ok(await site.fulmen("create", str(script), "--name", "taken"))
    again = refused(await site.fulmen("create", str(script), "--name", "taken"))
    assert "taken" in again and again.endswith(f" (the runner at {site.url})")

    wrong = refused(await site.fulmen("list", FULMEN_RUNNER_TOKEN="not-the-token"))
    token_file = site.served.state_dir / "api-token"
    assert wrong == (
        f"fulmen workers list: the runner at {site.url} refused the token from "
        "FULMEN_RUNNER_TOKEN: this route needs the header 'Authorization: Bearer <token>', "
        f"with the token in {token_file} on the runner's host"
    )
    # fulmen up's token file comes first: a stale one is named
    stale = site.data / "runner-api-token"
    stale.write_text("stale\n")
    from_up = refused(await site.fulmen("list"))
    assert from_up.startswith(
        f"fulmen workers list: the runner at {site.url} refused the token from {stale}: "
    )
    nowhere = refused(await site.fulmen("list", FULMEN_DATA_DIR=str(tmp_path / "empty")))
    assert nowhere.startswith(
        f"fulmen workers list: the runner at {site.url} needs an API token and none was found "
        "(FULMEN_RUNNER_TOKEN is unset; "
    )
    flag = refused(await site.fulmen("list", "--token-file", str(tmp_path / "none")))
    assert f"{tmp_path / 'none'}: missing or empty" in flag


async def test_unreachable_and_follow_as_processes(site: Site, tmp_path: Path) -> None:
    """Run as a user runs them: the whole stderr of an unreachable runner is one line, and
    Ctrl-C ends ``logs --follow`` with status 0 and nothing on stderr."""
    env = {k: v for k, v in {**os.environ, **site.env()}.items() if v is not None}
    command = [sys.executable, "-m", "fulmen", "workers"]
    closed = "http://127.0.0.1:9"  # discard: nothing listens there
    unreachable = await asyncio.create_subprocess_exec(
        *command, "list", "--url", closed, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    made = await site.served.create(ECHO, name="tail")
    await site.logged(made["id"], "run_ended")
    follow = await asyncio.create_subprocess_exec(
        *command, "logs", "tail", "--follow", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await unreachable.communicate()
    assert unreachable.returncode == 1 and out == b""
    assert err.decode().startswith(f"fulmen workers list: cannot reach the runner at {closed}: ")
    assert err.count(b"\n") == 1

    assert follow.stdout is not None
    async with asyncio.timeout(20):
        while b"\ttasks ran create" not in await follow.stdout.readline():
            pass
        await site.served.runner.triggers.run_now(made["id"])  # logged while it follows
        while b"\ttasks ran manual" not in await follow.stdout.readline():
            pass
    follow.send_signal(signal.SIGINT)
    rest, err = await follow.communicate()
    assert (follow.returncode, err) == (0, b""), err.decode()
    assert b"tasks ran create" not in rest  # each record once
