"""``fulmen run``: run a job file or a workflow locally, in a sandboxed child.

A job file is Python or JavaScript: ``.js``/``.mjs`` files are JavaScript, ``.py`` files
Python, and any other file is what its adaptor implies (an OpenFn adaptor package such as
``-a @openfn/language-common@3.3.4`` means JavaScript). JavaScript runs under Node.js with
OpenFn's runtime, its packages installed first into ``WORKER_REPO_DIR`` as the worker does.
A Python job's packages (``-a pandas@2.2.3 -r httpx==0.28.1``) are installed there too, into
the environment a worker on this host would use, from ``FULMEN_PYTHON_INDEX`` if set.

Logs go to stderr as they happen (coloured on a terminal); the final state goes to stdout or to
``-o FILE``. The exit status is 0 only when the run succeeded; otherwise the reason is the last
line on stderr. Bad input (missing file, invalid JSON, unknown adaptor, an unrunnable plan), a
bad sandbox setting and a sandbox that cannot give the ``--isolation`` asked for are each one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from fulmen.cli.bootstrap import CliError, run_async
from fulmen.cli.files import read_text
from fulmen.cli.isolation import sandbox_failure, sandbox_options, sandbox_settings
from fulmen.config import SandboxSettings, WorkerSettings
from fulmen.errors import (
    AdaptorError,
    ConfigError,
    ContractError,
    InputError,
    PlanError,
    SandboxError,
)
from fulmen.execution import Defaults, JavaScript, Python, RunRequest, start, start_zygote
from fulmen.plan import JAVASCRIPT, PYTHON, Job, Plan, language_of, validate
from fulmen.python_requirements import (
    AdaptorKind,
    conflicts,
    package_requirements,
    read_adaptor,
)
from fulmen.runtime import adaptors
from fulmen.runtime.events import LogLine, RuntimeEvent, StepComplete, WorkflowComplete

__all__ = ["run"]

_LEVEL_COLOURS = {"error": "red", "warn": "yellow", "success": "green", "debug": "bright_black"}
_LANGUAGE_OF_SUFFIX = {".js": JAVASCRIPT, ".mjs": JAVASCRIPT, ".py": PYTHON}


EXIT_STATUSES = """\b
Exit status:
  0   the run succeeded
  1   the run ended otherwise (fail, crash, kill, exception, cancel, lost);
      its reason is the last line on stderr
  2   bad input (a missing file, invalid JSON, an unknown adaptor, a plan
      that cannot run) or a sandbox below --isolation; one line on stderr
  70  a fault in Fulmen itself; one line naming the report written
"""


@click.command(epilog=EXIT_STATUSES)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "-a",
    "--adaptor",
    default="common",
    show_default=True,
    help="Adaptor of a job file: common, http, a package at a version (pandas@2.2.3, "
    "pandas@latest), an installed module, or an OpenFn adaptor for JavaScript.",
)
@click.option(
    "-r",
    "--requirement",
    "requirements",
    multiple=True,
    help="A package a Python job file imports (httpx==0.28.1); repeat for more.",
)
@click.option(
    "-s",
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    help="Input state JSON: a file, or - for standard input.",
)
@click.option(
    "-c",
    "--credential",
    "credential_path",
    type=click.Path(path_type=Path),
    help="Credential JSON for a job file (becomes state.configuration, never printed).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the final state here.")
@click.option("--timeout-ms", type=click.IntRange(min=1), help="Run timeout (default 300000).")
@click.option("--memory-mb", type=click.IntRange(min=1), help="Run memory limit (default 500).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "default", "none", "none-really"]),
    help="Which job logs to show.",
)
@click.option("--color/--no-color", default=None, help="Colour logs (default: on a terminal).")
@sandbox_options
def run(
    path: Path,
    adaptor: str,
    requirements: tuple[str, ...],
    state_path: Path | None,
    credential_path: Path | None,
    output: Path | None,
    timeout_ms: int | None,
    memory_mb: int | None,
    log_level: str | None,
    color: bool | None,
    **sandbox_flags: Any,
) -> None:
    """Run a job file (Python or JavaScript) or a workflow JSON (Lightning's plan shape),
    sandboxed."""
    try:
        sandbox = sandbox_settings(SandboxSettings.from_env(), sandbox_flags)
    except ConfigError as exc:
        raise CliError("run", exc.message) from exc
    _check_output(output)
    plan = _load_plan(path, adaptor, requirements, credential_path)
    options = dataclasses.replace(
        plan.options,
        run_timeout_ms=timeout_ms or plan.options.run_timeout_ms,
        run_memory_limit_mb=memory_mb or plan.options.run_memory_limit_mb,
        job_log_level=log_level or plan.options.job_log_level,
    )
    plan = dataclasses.replace(plan, options=options)
    initial = _read_json(state_path, "state") if state_path else {}
    if not isinstance(initial, dict):
        raise CliError("run", f"{state_path}: the state must be a JSON object")
    colour = sys.stderr.isatty() if color is None else color
    complete = run_async(_execute(RunRequest(plan, initial), colour, sandbox))
    _write_state(complete.final_state, output)
    if not complete.exit.ok:
        click.echo(f"fulmen run: run ended with {complete.exit}", err=True)
        sys.exit(1)


def _load_plan(
    path: Path, adaptor: str, requirements: tuple[str, ...], credential_path: Path | None
) -> Plan:
    if path.is_dir():
        raise CliError(
            "run", f"{path}: is a directory; give a job file (.py, .js) or a workflow (.json)"
        )
    if not path.exists():
        raise CliError("run", f"{path}: no such file")
    if path.suffix == ".json":
        if credential_path:
            raise CliError("run", "--credential is for job files; put credentials in the workflow")
        if requirements:
            raise CliError(
                "run", "--requirement is for job files; put requirements in the workflow"
            )
        try:
            plan = Plan.from_wire(_read_json(path, "workflow"))
        except ContractError as exc:
            raise CliError("run", f"{path}: {exc.message}") from exc
    else:
        credential = _read_json(credential_path, "credential") if credential_path else None
        if credential is not None and not isinstance(credential, dict):
            raise CliError("run", f"{credential_path}: the credential must be a JSON object")
        body = read_text("run", path)
        language = _LANGUAGE_OF_SUFFIX.get(path.suffix, language_of(adaptor))
        job = Job(
            id=path.stem,
            body=body,
            adaptor=adaptor,
            name=path.stem,
            credential=credential,
            language=language,
            requirements=requirements,
        )
        plan = Plan(id="local", jobs=(job,))
    try:
        validate(plan)
        for job in plan.jobs:
            if job.runs_in != PYTHON:
                if job.requirements:
                    raise PlanError(f"job {job.id}: requirements are for Python jobs")
                continue
            package_requirements(job)
            if read_adaptor(job.adaptor).kind is AdaptorKind.MODULE:
                adaptors.module_name(job.adaptor)
        problems = conflicts(plan)
        if problems:
            raise PlanError(problems[0])
    except (PlanError, AdaptorError, InputError) as exc:
        raise CliError("run", f"{path}: {exc.message}") from exc
    return plan


def _read_json(path: Path, what: str) -> Any:
    text = read_text("run", path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            "run",
            f"{path}: the {what} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})",
        ) from exc


def _check_output(output: Path | None) -> None:
    """Before the run, not after it: a final state with nowhere to go would be lost."""
    if output is None:
        return
    if output.is_dir():
        raise CliError("run", f"-o {output}: is a directory; name the file to write")
    folder = output.parent
    if not folder.is_dir():
        raise CliError("run", f"-o {output}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise CliError("run", f"-o {output}: cannot be written")


async def _execute(request: RunRequest, colour: bool, sandbox: SandboxSettings) -> WorkflowComplete:
    javascript = python = None
    settings = _worker_settings()
    if any(job.runs_in == JAVASCRIPT for job in request.plan.jobs):
        javascript, why_not = await JavaScript.find(Path(settings.repo_dir))
        if javascript is None:
            _echo_dim(f"JavaScript: {why_not}", colour)
    if any(package_requirements(job) for job in request.plan.jobs):
        python, why_not = Python.find(settings)
        if python is None:
            _echo_dim(f"Python packages: {why_not}", colour)
    try:
        zygote = await start_zygote(sandbox, javascript, python)
    except SandboxError as exc:
        raise CliError("run", sandbox_failure(exc)) from exc
    async with zygote:
        _echo_dim(f"sandbox: {zygote.isolation.summary()}", colour)
        execution = await start(zygote, request, Defaults(), javascript, python)
        complete: WorkflowComplete | None = None
        async for event in execution:
            _show(event, colour)
            if isinstance(event, WorkflowComplete):
                complete = event
    assert complete is not None  # Execution always ends with one
    return complete


def _worker_settings() -> WorkerSettings:
    """Where packages go and come from, as a worker on this host has it."""
    try:
        return WorkerSettings.from_env()
    except ConfigError as exc:
        raise CliError("run", exc.message) from exc


def _show(event: RuntimeEvent, colour: bool) -> None:
    if isinstance(event, LogLine):
        clock = dt.datetime.fromtimestamp(int(event.timestamp) / 1e6).strftime("%H:%M:%S.%f")[:-3]
        text = " ".join(m if isinstance(m, str) else json.dumps(m) for m in event.message)
        line = f"{clock} {event.source:<4} {text}"
        fg = _LEVEL_COLOURS.get(event.level)
        click.echo(click.style(line, fg=fg) if colour and fg else line, err=True)
    elif isinstance(event, StepComplete) and event.timestamp is None:
        _echo_dim(f"step {event.job_id} ended: {event.exit}", colour)


def _echo_dim(text: str, colour: bool) -> None:
    click.echo(click.style(text, dim=True) if colour else text, err=True)


def _write_state(final_state: str | None, output: Path | None) -> None:
    text = json.dumps(json.loads(final_state), indent=2) if final_state else "{}"
    if output is None:
        click.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise CliError("run", f"{output}: cannot write the final state: {exc}") from exc
