"""``fulmen up``: the whole system in one command: a coordinator, a worker and the runner.

``fulmen up`` is a supervisor of three child processes, each the same ``fulmen server``,
``fulmen worker`` and ``fulmen runner`` one would deploy: what runs here is what runs in
production, each part keeps its own signal handling (the worker drains, the runner stops
its workers), and a part that dies is named and stops the rest rather than leaving half a
system up. One process holding all three would share one event loop between uvicorn's, the
worker's and the runner's signal handlers, and tie this command to their internals.

On first start it fills the data directory (``./.fulmen`` by default: beside the checkout, as
``.venv`` is, and removed as easily; see datadir.py) and loads the example project
(``examples/project.yaml``) through the REST API, as ``fulmen deploy`` would. Then it prints
``Dashboard: <url>``, one ``Webhook: <url>`` line per enabled webhook trigger, ``Runner:
<url>`` with where its bearer token is and a ``curl`` line that creates a smart worker with
it, and ``Sandbox: isolation <level> (…)``, the best the host gave the worker's runs, on
stdout. On first start it also makes the store's first user, an instance admin
(``admin@localhost``, or ``FULMEN_ADMIN_EMAIL``), and prints ``Admin: <e-mail>`` and
``Password: <password>`` this once; later starts do not.
Ctrl-C or SIGTERM stops the worker (letting active runs finish for up to 10 s), the runner,
then the coordinator, and exits 0; a second Ctrl-C kills what is left. A child that exits on
its own stops the others, and ``fulmen up`` exits 1. The coordinator binds 127.0.0.1 unless
``--host`` says otherwise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import click

from fulmen.cli.bootstrap import CliError, run_async
from fulmen.cli.up.children import StartError
from fulmen.cli.up.datadir import prepare
from fulmen.cli.up.system import Options, System
from fulmen.config import DEFAULT_DATA_DIR, read_environ
from fulmen.errors import FulmenError, InputError
from fulmen.store.users import normal_email

__all__ = ["up"]


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FULMEN_DATA_DIR",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Keys, API tokens, the SQLite store and the runner's state; made on first start "
    "[FULMEN_DATA_DIR]. Every command finds the same one.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The coordinator's address.")
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=4000,
    show_default=True,
    help="The coordinator's port: the REST API, the dashboard and webhooks.",
)
@click.option(
    "--runner-port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="The runner's port (smart workers).",
)
@click.option("--no-runner", is_flag=True, help="Start the coordinator and worker only.")
@click.option(
    "--examples",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Project file loaded on first start [the checkout's examples/project.yaml].",
)
def up(
    data_dir: Path,
    host: str,
    port: int,
    runner_port: int,
    no_runner: bool,
    examples: Path | None,
) -> None:
    """Start a coordinator, a worker and the runner together; Ctrl-C stops them."""
    # Everything the system writes (the store with its dataclips, the runner's files) is for
    # this user alone, and the children inherit the mask.
    os.umask(0o077)
    environ = read_environ()
    admin = environ.get("FULMEN_ADMIN_EMAIL", "").strip() or Options.admin_email
    try:
        normal_email(admin)
    except InputError as exc:
        raise CliError("up", f"FULMEN_ADMIN_EMAIL: {exc.message}") from exc
    options = Options(host, port, runner_port, not no_runner, examples, admin)
    try:
        status = run_async(_up(data_dir, options, environ))
    except FulmenError as exc:
        raise CliError("up", exc.message, exit_code=1) from exc
    sys.exit(status)


async def _up(data_dir: Path, options: Options, environ: dict[str, str]) -> int:
    data = await prepare(data_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    system = System(data, options, environ, stop)
    try:
        try:
            started = await system.start()
        except StartError as exc:
            if stop.is_set():
                return 0
            click.echo(f"fulmen up: {exc}", err=True)
            return 1
        return await system.supervise() if started else 0
    finally:
        await system.stop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
