"""``fulmen runs``: look at runs, follow their logs, cancel them, and rerun work orders,
through a coordinator's REST API (the address and token as cli/client.py finds them:
``--url`` / ``FULMEN_URL``, ``FULMEN_API_TOKEN`` or ``--token-file``).

* ``list``: the newest runs under a header, one tab-separated line each: id, state, attempt,
  workflow, version, work order, created; ``--project`` and ``--workflow`` take names or ids
  (names.py);
* ``show RUN``: one run with its steps, each named by its job;
* ``logs RUN [--follow]``: the run's log, and with ``--follow`` what it logs next, until it
  ends;
* ``cancel RUN``: a queued run is cancelled at once; a running one is stopped by its worker;
* ``rerun WORK_ORDER… [--from-job JOB]`` or ``rerun --step STEP``: a new run in each work
  order, from that job's (by name or id) or step's stored input; one line per run made, one
  line on stderr per work order that could not be rerun (exit status 1 then).

The coordinator decides everything; this module only talks HTTP and prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Final

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import Api, connect, token_file_option, url_option
from fulmen.cli.names import Names
from fulmen.errors import ApiError
from fulmen.lifecycle import FINAL_RUN_STATES

__all__ = ["runs"]

HEADER: Final = ("RUN", "STATE", "ATTEMPT", "WORKFLOW", "VERSION", "WORK ORDER", "CREATED")
#: How often ``logs --follow`` asks for more: a person reading, not a machine.
FOLLOW_EVERY_S: Final = 1.0


@click.group()
def runs() -> None:
    """Runs on a coordinator: list, show, logs, cancel, rerun."""


@runs.command("list")
@click.option("--project", help="Only this project's runs (its name or id).")
@click.option("--workflow", help="Only this workflow's runs (its name or id).")
@click.option("--work-order", "work_order_id", help="Only this work order's runs.")
@click.option("--state", help="Comma-separated states, e.g. failed,crashed.")
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=20,
    show_default=True,
    help="At most this many runs, newest first.",
)
@click.option("--no-header", is_flag=True, help="Leave the header line out (for scripts).")
@url_option
@token_file_option
def list_runs(
    url: str | None,
    token_file: str | None,
    limit: int,
    no_header: bool,
    project: str | None,
    workflow: str | None,
    work_order_id: str | None,
    state: str | None,
) -> None:
    """The newest runs, one line each."""
    params: dict[str, Any] = {"limit": limit}
    with connect("runs list", url, token_file) as api:
        names = Names("runs list", api)
        chosen = names.project(project) if project else None
        if chosen:
            params["project_id"] = chosen["id"]
        if workflow:
            params["workflow_id"] = names.workflow(workflow, project=chosen)["id"]
        if work_order_id:
            params["work_order_id"] = work_order_id
        if state:
            params["state"] = state
        page = _call("runs list", api, "GET", "/api/runs", params=params)
        lines = [_line(run, names) for run in page["items"]]
    if not no_header:
        click.echo("\t".join(HEADER))
    for line in lines:
        click.echo(line)


@runs.command("show")
@click.argument("run_id")
@url_option
@token_file_option
def show(run_id: str, url: str | None, token_file: str | None) -> None:
    """One run and its steps."""
    with connect("runs show", url, token_file) as api:
        run = _call("runs show", api, "GET", f"/api/runs/{run_id}")
        jobs = _job_names(api, run)
        click.echo(_line(run, Names("runs show", api)))
    for name in ("retry_of", "rerun_of", "not_before", "cancel_requested_at", "error_type"):
        if run.get(name):
            click.echo(f"  {name}: {run[name]}")
    if run.get("error_message"):
        click.echo(f"  error_message: {run['error_message']}")
    for chosen in run.get("keychains", ()):
        click.echo(f"  keychain {chosen['keychain_name']}: {_chose(chosen)}")
    for step in run["steps"]:
        job = jobs.get(step["job_id"], step["job_id"])
        click.echo(f"  step {step['id']}\t{job}\t{step['state']}")


@runs.command("logs")
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what the run logs until it ends.")
@url_option
@token_file_option
def logs(run_id: str, follow: bool, url: str | None, token_file: str | None) -> None:
    """A run's log: time, level, job and message, one line each."""
    with connect("runs logs", url, token_file) as api:
        run = _call("runs logs", api, "GET", f"/api/runs/{run_id}")
        jobs = _job_names(api, run)
        for entry in _log_lines(api, run_id, follow):
            if entry is None:  # a quiet moment: did the run end, or start a new step?
                run = _call("runs logs", api, "GET", f"/api/runs/{run_id}")
                jobs = _job_names(api, run)
                if run["state"] in FINAL_RUN_STATES:
                    break
                time.sleep(FOLLOW_EVERY_S)
                continue
            click.echo(_log_line(entry, jobs, run))


@runs.command("cancel")
@click.argument("run_id")
@url_option
@token_file_option
def cancel(run_id: str, url: str | None, token_file: str | None) -> None:
    """Cancel a run: at once if queued; by its worker if running."""
    with connect("runs cancel", url, token_file) as api:
        run = _call("runs cancel", api, "POST", f"/api/runs/{run_id}/cancel")
    if run["state"] == "cancelled":
        click.echo(f"{run_id}: cancelled")
    else:
        click.echo(f"{run_id}: cancel requested; its worker stops it ({run['state']} now)")


@runs.command("rerun")
@click.argument("work_order_ids", nargs=-1)
@click.option("--from-job", "job", help="Rerun from this job (its name or id) [from the start].")
@click.option("--step", "step_id", help="Rerun one work order from this step instead.")
@url_option
@token_file_option
def rerun(
    work_order_ids: tuple[str, ...],
    job: str | None,
    step_id: str | None,
    url: str | None,
    token_file: str | None,
) -> None:
    """A new run in each work order, from a step's stored input."""
    if bool(step_id) == bool(work_order_ids) or (step_id and job):
        raise CliError("runs rerun", "give work order ids (and --from-job), or --step")
    with connect("runs rerun", url, token_file) as api:
        if step_id:
            made = _call("runs rerun", api, "POST", f"/api/steps/{step_id}/rerun")
            click.echo(f"{made['run_id']}\t{made['work_order_id']}")
            return
        job_id = _job_id(api, job, work_order_ids) if job else None
        body = {"work_order_ids": list(work_order_ids), "job_id": job_id}
        done = _call("runs rerun", api, "POST", "/api/work_orders/rerun", json=body)
    for made in done["runs"]:
        click.echo(f"{made['run_id']}\t{made['work_order_id']}")
    for error in done["errors"]:
        click.echo(f"fulmen runs rerun: {error['work_order_id']}: {error['message']}", err=True)
    if done["errors"]:
        raise click.exceptions.Exit(1)


def _job_id(api: Api, job: str, work_order_ids: tuple[str, ...]) -> str:
    """The id of the job named ``job`` in the workflow of the work orders (the first one
    that exists: one that does not is reported by the rerun itself, with the others')."""
    names = Names("runs rerun", api)
    for work_order_id in work_order_ids:
        try:
            order = api.call("GET", f"/api/work_orders/{work_order_id}")
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise CliError("runs rerun", exc.message, exit_code=1) from exc
        workflow = names.workflow_by_id(order["workflow_id"])
        if workflow is not None:
            return str(names.job(workflow, job)["id"])
    return job  # nothing to look it up in: the coordinator says what is wrong


def _chose(chosen: dict[str, Any]) -> str:
    """What a keychain chose for the run: the credential, and by which value."""
    if chosen["credential_id"] is None:
        return f"no credential ({chosen['path']} matched nothing, no default)"
    how = "the default" if chosen["matched"] is None else f"{chosen['path']} = {chosen['matched']}"
    return f"credential {chosen['credential_id']} ({how})"


def _job_names(api: Api, run: dict[str, Any]) -> dict[str, str]:
    """Job id → name, as the run's own version of its workflow had them."""
    snapshot = _call("runs", api, "GET", f"/api/snapshots/{run['snapshot_id']}")
    return {job["id"]: job.get("name") or job["id"] for job in snapshot["workflow"]["jobs"]}


def _log_lines(api: Api, run_id: str, follow: bool) -> Iterator[dict[str, Any] | None]:
    """Every log line of the run in order; with ``follow``, ``None`` whenever none is new,
    then the lines that come after. The page cursor is opaque, so following re-reads the
    last page from the cursor that began it and skips the lines already printed."""
    start: str | None = None
    seen: set[str] = set()
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if start:
            params["cursor"] = start
        page = _call("runs logs", api, "GET", f"/api/runs/{run_id}/logs", params=params)
        for entry in page["items"]:
            if entry["id"] not in seen:
                seen.add(entry["id"])
                yield entry
        if page.get("next_cursor"):
            start, seen = page["next_cursor"], set()
        elif follow:
            yield None
        else:
            return


def _log_line(entry: dict[str, Any], jobs: dict[str, str], run: dict[str, Any]) -> str:
    steps = {step["id"]: step["job_id"] for step in run["steps"]}
    job_id = steps.get(entry.get("step_id") or "")
    where = jobs.get(job_id, job_id) if job_id else entry["source"]
    return f"{entry['timestamp']}\t{entry['level']}\t{where}\t{entry['message']}"


def _call(command: str, api: Api, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return api.call(method, path, **kwargs)
    except ApiError as exc:
        raise CliError(command, exc.message, exit_code=1) from exc


def _line(run: dict[str, Any], names: Names) -> str:
    version = run.get("snapshot_version")
    workflow = names.workflow_by_id(run["workflow_id"])
    return "\t".join(
        [
            run["id"],
            run["state"],
            f"attempt {run.get('attempt', 1)}",
            workflow["name"] if workflow else run["workflow_id"],
            f"v{version}" if version is not None else "v?",
            run["work_order_id"],
            run["inserted_at"],
        ]
    )
