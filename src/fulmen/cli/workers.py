"""``fulmen workers``: a runner's smart workers, through its HTTP API (spec runner.md §3.3),
on this host or another (the address and token as cli/client.py finds them: ``--url`` /
``FULMEN_RUNNER_URL``, ``FULMEN_RUNNER_TOKEN`` or ``--token-file``, else the token that
``fulmen up`` or a standalone ``fulmen runner`` wrote).

* ``create SCRIPT``: a worker from a Python file, with ``--name``, ``--type``, ``--schedule``
  (cron), ``--timezone``, ``--event TOPIC``… and ``--no-run-on-create``; its private config
  is read from ``--config FILE`` (``-``: standard input), never from an argument, which would
  leave it in the shell's history and the process list. Prints the worker's name and id, its
  state and next run;
* ``list``: a header, then one tab-separated line per worker: id, name, type, state, schedule,
  last run, next run (``-`` for none);
* ``show REF``: every field the runner shows of one worker (never its config), one per line;
* ``logs REF [--since T] [--follow]``: its log, one line per record (time, stream, line);
  ``--follow`` then asks for what came after the last record's time every second, until
  Ctrl-C, which ends it with status 0;
* ``runs REF``: its runs, newest first; ``run REF``: run its ``tasks`` now; ``restart REF``;
  ``delete REF [--purge-key]``.

``REF`` is a worker's id or name, matched as names.py matches them (an id, a name, a name in
another case) against the runner's listing. The runner decides everything; this module only
talks HTTP and prints. Each failure is one line on stderr naming the runner's URL: exit status
2 for what the user gave (a file, a REF that matches nothing), 1 for what the runner said.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import (
    RunnerApi,
    connect_runner,
    runner_token_file_option,
    runner_url_option,
)
from fulmen.cli.files import read_text
from fulmen.cli.names import pick

__all__ = ["FOLLOW_EVERY_S", "HEADER", "RUNS_HEADER", "since_time", "workers"]

Doc = dict[str, Any]

HEADER: Final = ("ID", "NAME", "TYPE", "STATE", "SCHEDULE", "LAST RUN", "NEXT RUN")
RUNS_HEADER: Final = ("RUN", "TRIGGER", "STARTED", "ENDED", "OUTCOME", "ERROR")
#: How often ``logs --follow`` asks for more: a person reading, not a machine.
FOLLOW_EVERY_S: Final = 1.0
#: The most records one ``GET …/logs`` answers (api.py's limit).
_MOST: Final = 1000
_AGO: Final = re.compile(r"(\d+)([smhd])")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: ``show``'s fields in this order; any others the runner adds follow them.
_SHOWN: Final = (
    "id", "name", "type", "state", "schedule", "timezone", "events", "handlers", "created_at",
    "last_run", "next_run", "recent_runs", "isolation", "identity", "identity_id",
    "script_sha256", "pid", "args", "error_policy",
)  # fmt: skip


@click.group()
def workers() -> None:
    """A runner's smart workers: create, list, show, logs, runs, run, restart, delete."""


@workers.command("create")
@click.argument("script", type=click.Path(path_type=Path))
@click.option("--name", help="A name to use instead of the id (unique on the runner).")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["module", "classic"]),
    help="module: handlers are functions (default); classic: register()/add_event_listener().",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="The worker's private config: a file holding a JSON object; - for standard input.",
)
@click.option("--schedule", help="Run tasks on this cron schedule, e.g. '*/5 * * * *'.")
@click.option("--timezone", help="The schedule's IANA time zone [UTC].")
@click.option(
    "--event", "events", multiple=True, help="Deliver this event topic (repeatable; a.* matches)."
)
@click.option(
    "--no-run-on-create", is_flag=True, help="Do not run tasks once the worker has started."
)
@runner_url_option
@runner_token_file_option
def create(
    script: Path,
    name: str | None,
    kind: str | None,
    config_path: Path | None,
    schedule: str | None,
    timezone: str | None,
    events: tuple[str, ...],
    no_run_on_create: bool,
    url: str | None,
    token_file: str | None,
) -> None:
    """Create a worker from the Python file SCRIPT (- for standard input).

    Its config is read from --config, never from an argument.
    """
    if str(script) == "-" and str(config_path) == "-":
        raise CliError("workers create", "SCRIPT and --config cannot both be standard input")
    body: Doc = {"script": read_text("workers create", script)}
    if config_path is not None:
        body["config"] = _config(config_path)
    given = {"name": name, "type": kind, "schedule": schedule, "timezone": timezone}
    body.update({key: value for key, value in given.items() if value is not None})
    if events:
        body["events"] = list(events)
    if no_run_on_create:
        body["run_on_create"] = False
    with connect_runner("workers create", url, token_file) as api:
        made = api.request("workers create", "POST", "/workers", json=body)
    next_run = f"next run {made['next_run']}" if made.get("next_run") else "no schedule"
    click.echo(f"worker {_label(made)}: created, {made['state']}, {next_run}")


@workers.command("list")
@click.option("--no-header", is_flag=True, help="Leave the header line out (for scripts).")
@runner_url_option
@runner_token_file_option
def list_workers(no_header: bool, url: str | None, token_file: str | None) -> None:
    """Every worker, one line each."""
    with connect_runner("workers list", url, token_file) as api:
        found = api.request("workers list", "GET", "/workers")
    if not no_header:
        click.echo("\t".join(HEADER))
    for worker in found:
        fields = ("id", "name", "type", "state", "schedule", "last_run", "next_run")
        click.echo("\t".join(_text(worker.get(field)) for field in fields))


@workers.command("show")
@click.argument("ref")
@runner_url_option
@runner_token_file_option
def show(ref: str, url: str | None, token_file: str | None) -> None:
    """One worker (by id or name): its triggers, state, identity and recent runs."""
    with connect_runner("workers show", url, token_file) as api:
        worker = _find("workers show", api, ref)
        detail = api.request("workers show", "GET", _path(worker))
    for field in (*_SHOWN, *sorted(set(detail) - set(_SHOWN))):
        if field in detail:
            click.echo(f"{field}: {_text(detail[field])}")


@workers.command("logs")
@click.argument("ref")
@click.option(
    "--since",
    help="Only what came after this: an ISO 8601 time, unix seconds, or an age (90s, 10m, 2h, 1d).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, _MOST),
    default=200,
    show_default=True,
    help="At most this many records (the latest).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing what it logs, until Ctrl-C.")
@runner_url_option
@runner_token_file_option
def logs(
    ref: str, since: str | None, limit: int, follow: bool, url: str | None, token_file: str | None
) -> None:
    """A worker's log: time, stream (stdout, stderr, log, runner) and line, one record each."""
    start = since_time(since, datetime.now(UTC)) if since else None
    with connect_runner("workers logs", url, token_file) as api:
        worker = _find("workers logs", api, ref)
        records = _records(api, _path(worker) + "/logs", start, limit, follow=follow)
        try:
            for record in records:
                click.echo(f"{record['ts']}\t{record['stream']}\t{record['line']}")
        except KeyboardInterrupt:  # how --follow ends: not a failure
            if not follow:
                raise


@workers.command("runs")
@click.argument("ref")
@click.option(
    "--limit",
    type=click.IntRange(1, _MOST),
    default=20,
    show_default=True,
    help="At most this many runs (the newest).",
)
@click.option("--no-header", is_flag=True, help="Leave the header line out (for scripts).")
@runner_url_option
@runner_token_file_option
def runs(ref: str, limit: int, no_header: bool, url: str | None, token_file: str | None) -> None:
    """A worker's runs of tasks, newest first: trigger, times, outcome and error."""
    with connect_runner("workers runs", url, token_file) as api:
        worker = _find("workers runs", api, ref)
        found = api.request("workers runs", "GET", _path(worker) + "/runs", params={"limit": limit})
    if not no_header:
        click.echo("\t".join(RUNS_HEADER))
    for run in found:
        fields = ("id", "trigger", "started_at", "ended_at", "outcome")
        click.echo("\t".join([*(_text(run.get(f)) for f in fields), run.get("error") or ""]))


@workers.command("run")
@click.argument("ref")
@runner_url_option
@runner_token_file_option
def run(ref: str, url: str | None, token_file: str | None) -> None:
    """Run a worker's tasks now, without waiting for it to end (see logs and runs)."""
    with connect_runner("workers run", url, token_file) as api:
        worker = _find("workers run", api, ref)
        started = api.request("workers run", "POST", _path(worker) + "/run")
    click.echo(f"worker {_label(worker)}: run {started['run_id']} started")


@workers.command("restart")
@click.argument("ref")
@runner_url_option
@runner_token_file_option
def restart(ref: str, url: str | None, token_file: str | None) -> None:
    """A fresh process for a worker, its crash count cleared (how a failed one comes back)."""
    with connect_runner("workers restart", url, token_file) as api:
        worker = _find("workers restart", api, ref)
        api.request("workers restart", "POST", _path(worker) + "/restart")
        now = api.request("workers restart", "GET", _path(worker))
    click.echo(f"worker {_label(worker)}: restarted, {now['state']}")


@workers.command("delete")
@click.argument("ref")
@click.option(
    "--purge-key",
    is_flag=True,
    help="Destroy its omni key too, unless another worker or a named identity holds it.",
)
@runner_url_option
@runner_token_file_option
def delete(ref: str, purge_key: bool, url: str | None, token_file: str | None) -> None:
    """Stop a worker and forget it: process, triggers, script, config, runs and logs.

    Its omni key is kept (the same script and policy get it back) unless --purge-key.
    """
    with connect_runner("workers delete", url, token_file) as api:
        listed = api.request("workers delete", "GET", "/workers")
        worker = pick("workers delete", "worker", ref, listed)
        params = {"purge_key": "1"} if purge_key else None
        api.request("workers delete", "DELETE", _path(worker), params=params)
    line = f"worker {_label(worker)}: deleted"
    if purge_key:
        line += f"; {_key_fate(worker, listed)}"
    click.echo(line)


def since_time(text: str, now: datetime) -> str:
    """``--since`` as the runner takes it: an age (``10m``) becomes the time that long before
    ``now``; an ISO time or unix seconds go as they are (the runner says if they are not)."""
    age = _AGO.fullmatch(text.strip())
    if age is None:
        return text
    seconds = int(age[1]) * _UNIT_S[age[2]]
    return (now - timedelta(seconds=seconds)).isoformat()


def _records(
    api: RunnerApi, path: str, since: str | None, limit: int, *, follow: bool
) -> Iterator[Doc]:
    """The log's records from ``since`` in order; with ``follow``, then those after the last
    one, asked for every :data:`FOLLOW_EVERY_S` for as long as the caller reads.

    The runner writes times to the microsecond but keeps finer ones, so a ``since`` of the
    last record's own time could leave out a record of the same microsecond. Each poll asks
    from a microsecond earlier instead and skips the records it has already given.
    """
    params: Doc = {"limit": limit, **({"since": since} if since else {})}
    given: dict[str, datetime] = {}  # the records given at or after the next poll's since
    while True:
        for record in api.request("workers logs", "GET", path, params=params):
            key = json.dumps(record, sort_keys=True)
            if key not in given:
                given[key] = datetime.fromisoformat(record["ts"])
                yield record
        if not follow:
            return
        if given:
            start = max(given.values()) - timedelta(microseconds=1)
            given = {key: ts for key, ts in given.items() if ts >= start}
            params = {"since": start.isoformat()}
        params["limit"] = _MOST
        time.sleep(FOLLOW_EVERY_S)


def _config(path: Path) -> Doc:
    """The config in the file: a JSON object, checked here before anything is sent."""
    text = read_text("workers create", path)
    where = "standard input" if str(path) == "-" else str(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            "workers create",
            f"--config {where}: not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    if not isinstance(value, dict):
        raise CliError(
            "workers create",
            f"--config {where}: the config must be a JSON object, not {type(value).__name__}",
        )
    return value


def _find(command: str, api: RunnerApi, ref: str) -> Doc:
    """The worker whose id or name is ``ref`` (names.py's rule), from the runner's listing."""
    return pick(command, "worker", ref, api.request(command, "GET", "/workers"))


def _key_fate(worker: Doc, listed: list[Doc]) -> str:
    """What ``purge_key`` did, as the runner decides it (service.py's ``delete``)."""
    if worker.get("identity"):
        return f"its key is kept: it belongs to the named identity {worker['identity']}"
    others = [w for w in listed if w["id"] != worker["id"]]
    sharing = [w for w in others if w.get("identity_id") == worker.get("identity_id")]
    if sharing:
        return f"its key is kept: worker {_label(sharing[0])} has the same identity"
    return "its key is destroyed"


def _path(worker: Doc) -> str:
    return f"/workers/{quote(worker['id'], safe='')}"


def _label(worker: Doc) -> str:
    return f"{worker['name']} ({worker['id']})" if worker.get("name") else str(worker["id"])


def _text(value: Any) -> str:
    """A field as one line shows it: ``-`` for none, lists joined, objects as JSON."""
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
