"""``fulmen adaptors``: the Python packages this host's workers install for runs.

Each distinct set of pins a run's Python jobs need is one environment under
``WORKER_REPO_DIR`` (``fulmen.packages.pypi``). These commands look at them, install one
before any run asks for it (a host that will be offline, say), and remove what is over the
cache's limits, as a worker does after each install. They read the worker's settings
(``WORKER_REPO_DIR``, ``FULMEN_PYTHON_INDEX``, ``WORKER_PYTHON_CACHE_MB``/``_DAYS``), so they
act on the cache the worker on this host uses.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import click

from fulmen.cli.bootstrap import CliError, run_async
from fulmen.config import WorkerSettings
from fulmen.errors import AdaptorError, ConfigError, InputError
from fulmen.execution import Python
from fulmen.packages.pypi import CacheLimits
from fulmen.plan import Job, Plan
from fulmen.python_requirements import package_requirements

__all__ = ["adaptors"]


@click.group()
def adaptors() -> None:
    """The Python packages installed for runs: list, install ahead, prune."""


@adaptors.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per environment.")
def list_(as_json: bool) -> None:
    """Each environment: its packages, size and when a run last used it."""
    python, settings = _python("list")
    found = python.repo.environments()
    if as_json:
        for environment in found:
            click.echo(json.dumps({**environment.to_json(), "used": environment.used}))
        return
    if not found:
        click.echo(f"no Python environments in {settings.repo_dir}")
        return
    click.echo(f"{'ENVIRONMENT':<22}{'SIZE':>10}  {'LAST USED':<17}PACKAGES")
    for environment in found:
        click.echo(
            f"{environment.key:<22}{_size(environment.size):>10}  {_when(environment.used):<17}"
            f"{', '.join(environment.pins)}"
        )
    total = sum(e.size for e in found)
    click.echo(f"{len(found)} environments, {_size(total)} in {settings.repo_dir}")


@adaptors.command()
@click.argument("adaptor")
@click.option(
    "-r",
    "--requirement",
    "requirements",
    multiple=True,
    help="Another package the jobs import (httpx==0.28.1); repeat for more.",
)
def install(adaptor: str, requirements: tuple[str, ...]) -> None:
    """Install the environment of ADAPTOR (pandas@2.2.3, pandas@latest) and its
    requirements, as a run whose Python jobs name them would get it."""
    python, _ = _python("install")
    plan = Plan(
        id="install",
        jobs=(Job(id="install", body="", adaptor=adaptor, requirements=requirements),),
    )
    try:
        if not package_requirements(plan.jobs[0]):
            raise CliError(
                "adaptors install",
                f"{adaptor}: nothing to install (it ships with Fulmen, or "
                "is a module installed with it); name a package at a version, such as "
                "pandas@2.2.3",
            )
    except InputError as exc:
        raise CliError("adaptors install", exc.message) from exc
    try:
        environment = run_async(python.setup_for(plan, _say))
    except AdaptorError as exc:
        raise CliError("adaptors install", exc.message, exit_code=1) from exc
    assert environment is not None  # it has packages: checked above
    state = f"installed in {environment.seconds:.1f}s" if environment.seconds else "was ready"
    click.echo(f"{environment.key}: {state}: {environment.described()}")


@adaptors.command()
@click.option("--max-mb", type=click.IntRange(min=0), help="Keep at most this much in all.")
@click.option(
    "--max-days", type=click.FloatRange(min=0), help="Remove what no run used for this long."
)
@click.option("--all", "everything", is_flag=True, help="Remove every environment not in use.")
def prune(max_mb: int | None, max_days: float | None, everything: bool) -> None:
    """Remove environments over the cache's limits (the worker's unless given): those unused
    for longest first; one a run is using is kept."""
    python, _ = _python("prune")
    limits = python.repo.limits
    if everything:
        limits = CacheLimits(max_bytes=0, max_age_s=0)
    elif max_mb is not None or max_days is not None:
        limits = CacheLimits(
            max_bytes=limits.max_bytes if max_mb is None else max_mb * 1024 * 1024,
            max_age_s=limits.max_age_s if max_days is None else max_days * 86_400,
        )
    removed = python.repo.prune(limits)
    for environment in removed:
        click.echo(
            f"removed {environment.key} ({_size(environment.size)}): {environment.described()}"
        )
    left = python.repo.environments()
    click.echo(f"removed {len(removed)}, kept {len(left)} ({_size(sum(e.size for e in left))})")


def _python(command: str) -> tuple[Python, WorkerSettings]:
    try:
        settings = WorkerSettings.from_env()
    except ConfigError as exc:
        raise CliError(f"adaptors {command}", exc.message) from exc
    python, why_not = Python.find(settings)
    if python is None:
        raise CliError(f"adaptors {command}", why_not, exit_code=1)
    return python, settings


def _say(line: str) -> None:
    click.echo(line, err=True)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _when(timestamp: float) -> str:
    if not timestamp:
        return "never"
    moment = dt.datetime.fromtimestamp(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M") if time.time() - timestamp > 60 else "just now"
