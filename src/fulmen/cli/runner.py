"""``fulmen runner``: the smart-worker service (spec runner.md §3) on loopback port 8080.

Flags override the ``FULMEN_RUNNER_*`` variables, and the sandbox flags theirs
(``cli/isolation.py``). Once requests are served, ``fulmen runner: sandbox: …`` (the
isolation its workers get) and then where the API's token is (``fulmen runner: API token in
PATH …``; ``<state-dir>/api-token``, made on first start) go to stderr, and one line
``fulmen runner: listening on http://HOST:PORT`` to stdout (with ``--listen 127.0.0.1:0`` it
names the port picked). ``--no-auth`` drops the token, for a loopback listener only. A bad
setting, or a sandbox below the ``--isolation`` asked for, stops start-up with one line on
stderr, exit status 2. SIGINT/SIGTERM stop every worker's process and exit; the workers stay
stored and come back on the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import click

from fulmen.cli.bootstrap import CliError, configure_logging, log_format_option, run_async
from fulmen.cli.isolation import sandbox_failure, sandbox_options, sandbox_settings
from fulmen.config import RunnerSettings, parse_listen
from fulmen.errors import ConfigError, SandboxError

__all__ = ["runner"]


@click.command()
@click.option(
    "--listen", metavar="HOST:PORT", help="Address [FULMEN_RUNNER_LISTEN; 127.0.0.1:8080]."
)
@click.option(
    "--state-dir",
    help="Workers, keys and logs [FULMEN_RUNNER_STATE_DIR; <FULMEN_DATA_DIR or .fulmen>/runner].",
)
@click.option(
    "--master-key-file",
    help="0600 file with the 32-byte master key [FULMEN_RUNNER_MASTER_KEY_FILE; "
    "<state-dir>/master.key, made on first start].",
)
@click.option(
    "--api-token-file",
    help="0600 file with the API's bearer token [FULMEN_RUNNER_API_TOKEN_FILE; "
    "<state-dir>/api-token, made on first start].",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Take management requests without a token (a loopback --listen only).",
)
@click.option("--max-workers", type=click.IntRange(min=1), help="[FULMEN_RUNNER_MAX_WORKERS; 64].")
@click.option(
    "--restart-backoff",
    metavar="MIN/MAX",
    help="Seconds between restarts of a crashed worker [1/300].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log the runner's own lines on stderr.")
@log_format_option
@sandbox_options
def runner(log_format: str, **flags: Any) -> None:
    """Serve smart workers: scripts with private config, cron/HTTP/event triggers and keys."""
    from fulmen.runner.app import serve  # the HTTP stack loads only for this command

    verbose = flags.pop("verbose")
    try:
        settings = settings_from(RunnerSettings.from_env(), flags)
    except ConfigError as exc:
        raise CliError("runner", exc.message) from exc
    configure_logging(logging.INFO if verbose else logging.WARNING, log_format)
    try:
        run_async(serve(settings, announce=_announce))
    except ConfigError as exc:
        raise CliError("runner", exc.message) from exc
    except SandboxError as exc:
        raise CliError("runner", sandbox_failure(exc)) from exc
    except KeyboardInterrupt:
        sys.exit(130)


def settings_from(settings: RunnerSettings, flags: dict[str, Any]) -> RunnerSettings:
    """The environment's settings with the given flags laid over them.

    Raises:
        ConfigError: a bad ``--listen``, ``--restart-backoff`` or sandbox flag.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    given["sandbox"] = sandbox_settings(settings.sandbox, given)
    if "listen" in given:
        given["host"], given["port"] = parse_listen(given.pop("listen"))
    if "restart_backoff" in given:
        text = given.pop("restart_backoff")
        low, sep, high = text.partition("/")
        try:
            pair = (float(low), float(high))
        except ValueError:
            pair = (0.0, 0.0)
        if not sep or not 0 < pair[0] <= pair[1]:
            raise ConfigError(f"--restart-backoff must be min/max seconds, not {text!r}")
        given["restart_backoff_min"], given["restart_backoff_max"] = pair
    return dataclasses.replace(settings, **given)


def _announce(url: str, sandbox: str, auth: str) -> None:
    click.echo(f"fulmen runner: sandbox: {sandbox}", err=True)
    click.echo(f"fulmen runner: {auth}", err=True)
    click.echo(f"fulmen runner: listening on {url}")
    sys.stdout.flush()
