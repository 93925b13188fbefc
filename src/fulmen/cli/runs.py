"""``fulmen runs``: look at runs, cancel them, and rerun work orders, through a coordinator's
REST API (the address and token as cli/client.py finds them: ``--url`` / ``FULMEN_URL``,
``FULMEN_API_TOKEN`` or ``--token-file``).

* ``list``: the newest runs, one tab-separated line each: id, state, attempt, workflow
  version, work order, created;
* ``show RUN``: one run with its steps;
* ``cancel RUN``: a queued run is cancelled at once; a running one is stopped by its worker;
* ``rerun WORK_ORDER… [--from-job JOB]`` or ``rerun --step STEP``: a new run in each work
  order, from that job's (or step's) stored input; one line per run made, one line on
  stderr per work order that could not be rerun (exit status 1 then).

The coordinator decides everything; this module only talks HTTP and prints.
"""

from __future__ import annotations

from typing import Any

import click

from fulmen.cli.bootstrap import CliError
from fulmen.cli.client import (
    Api,
    connect,
    token_file_option,
    url_option,
)
from fulmen.errors import ApiError

__all__ = ["runs"]


@click.group()
def runs() -> None:
    """Runs on a coordinator: list, show, cancel, rerun."""


@runs.command("list")
@click.option("--project", "project_id", help="Only this project's runs.")
@click.option("--workflow", "workflow_id", help="Only this workflow's runs.")
@click.option("--work-order", "work_order_id", help="Only this work order's runs.")
@click.option("--state", help="Comma-separated states, e.g. failed,crashed.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@url_option
@token_file_option
def list_runs(url: str | None, token_file: str | None, limit: int, **filters: str | None) -> None:
    """The newest runs, one line each."""
    params: dict[str, Any] = {k: v for k, v in filters.items() if v}
    params["limit"] = limit
    with connect("runs list", url, token_file) as api:
        page = _call("runs list", api, "GET", "/api/runs", params=params)
    for run in page["items"]:
        click.echo(_line(run))


@runs.command("show")
@click.argument("run_id")
@url_option
@token_file_option
def show(run_id: str, url: str | None, token_file: str | None) -> None:
    """One run and its steps."""
    with connect("runs show", url, token_file) as api:
        run = _call("runs show", api, "GET", f"/api/runs/{run_id}")
    click.echo(_line(run))
    for name in ("retry_of", "rerun_of", "not_before", "cancel_requested_at", "error_type"):
        if run.get(name):
            click.echo(f"  {name}: {run[name]}")
    if run.get("error_message"):
        click.echo(f"  error_message: {run['error_message']}")
    for step in run["steps"]:
        click.echo(f"  step {step['id']}\t{step['job_id']}\t{step['state']}")


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
@click.option("--from-job", "job_id", help="Rerun from this job's step [from the start].")
@click.option("--step", "step_id", help="Rerun one work order from this step instead.")
@url_option
@token_file_option
def rerun(
    work_order_ids: tuple[str, ...],
    job_id: str | None,
    step_id: str | None,
    url: str | None,
    token_file: str | None,
) -> None:
    """A new run in each work order, from a step's stored input."""
    if bool(step_id) == bool(work_order_ids) or (step_id and job_id):
        raise CliError("runs rerun", "give work order ids (and --from-job), or --step")
    with connect("runs rerun", url, token_file) as api:
        if step_id:
            made = _call("runs rerun", api, "POST", f"/api/steps/{step_id}/rerun")
            click.echo(f"{made['run_id']}\t{made['work_order_id']}")
            return
        body = {"work_order_ids": list(work_order_ids), "job_id": job_id}
        done = _call("runs rerun", api, "POST", "/api/work_orders/rerun", json=body)
    for made in done["runs"]:
        click.echo(f"{made['run_id']}\t{made['work_order_id']}")
    for error in done["errors"]:
        click.echo(f"fulmen runs rerun: {error['work_order_id']}: {error['message']}", err=True)
    if done["errors"]:
        raise click.exceptions.Exit(1)


def _call(command: str, api: Api, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return api.call(method, path, **kwargs)
    except ApiError as exc:
        raise CliError(command, exc.message, exit_code=1) from exc


def _line(run: dict[str, Any]) -> str:
    version = run.get("snapshot_version")
    return "\t".join(
        [
            run["id"],
            run["state"],
            f"attempt {run.get('attempt', 1)}",
            f"v{version}" if version is not None else "v?",
            run["work_order_id"],
            run["inserted_at"],
        ]
    )
