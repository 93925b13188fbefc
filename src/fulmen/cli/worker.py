"""``fulmen worker``: claim runs from a coordinator (Fulmen's or OpenFn Lightning) and run them.

Configuration is ws-worker's (spec §10.5): every environment variable it reads, and a flag for
each, named as ws-worker names them where it has one, plus Fulmen's sandbox flags
(``cli/isolation.py``). A flag wins over its variable. A missing or malformed secret, key or
value stops start-up with one line naming the variable, exit status 2; so does a sandbox that
cannot give the ``--isolation`` asked for, naming what is missing. SIGTERM drains and exits
0; a second Ctrl-C stops at once (exit 130).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import click

from fulmen.cli.bootstrap import CliError, configure_logging, log_format_option, run_async
from fulmen.cli.isolation import sandbox_failure, sandbox_options, sandbox_settings
from fulmen.config import Secret, WorkerSettings
from fulmen.errors import ConfigError, SandboxError
from fulmen.worker import prepare, serve

__all__ = ["worker"]

_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING}


@click.command()
@click.option(
    "-l",
    "--lightning",
    "lightning_url",
    metavar="URL",
    multiple=True,
    help="Coordinator socket base URL; repeat it, or separate URLs with commas, for replicas "
    "sharing a database [WORKER_LIGHTNING_SERVICE_URL; ws://localhost:4000/worker].",
)
@click.option("-s", "--secret", help="Shared worker secret [WORKER_SECRET]; prefer the variable.")
@click.option(
    "--lightning-public-key",
    "public_key",
    metavar="BASE64_PEM",
    help="Key that verifies run tokens [WORKER_LIGHTNING_PUBLIC_KEY, LIGHTNING_PUBLIC_KEY].",
)
@click.option("--capacity", type=click.IntRange(min=1), help="Runs at once [WORKER_CAPACITY; 5].")
@click.option(
    "--workloops",
    metavar="SPEC",
    help='Claim loops, e.g. "fast_lane:1 manual>*:4" [WORKER_WORKLOOPS]; not with --capacity.',
)
@click.option("-p", "--port", type=click.IntRange(min=0), help="Health port [WORKER_PORT; 2222].")
@click.option("--health-host", help="Health address [WORKER_HEALTH_HOST; 127.0.0.1].")
@click.option("--backoff", metavar="MIN/MAX", help="Claim backoff seconds [WORKER_BACKOFF; 1/10].")
@click.option(
    "-t",
    "--max-run-duration-seconds",
    "max_run_duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Default run timeout [WORKER_MAX_RUN_DURATION_SECONDS; 300].",
)
@click.option(
    "--run-memory",
    "max_run_memory_mb",
    type=click.IntRange(min=1),
    help="Default run memory MB [WORKER_MAX_RUN_MEMORY_MB; 500].",
)
@click.option(
    "--payload-memory",
    "max_payload_mb",
    type=click.FloatRange(min=0, min_open=True),
    help="Largest dataclip sent, MB [WORKER_MAX_PAYLOAD_MB; 10].",
)
@click.option(
    "--log-payload-memory",
    "max_log_payload_mb",
    type=click.FloatRange(min=0, min_open=True),
    help="Largest log line sent, MB [WORKER_MAX_LOG_PAYLOAD_MB; 1].",
)
@click.option(
    "--message-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a run event waits for its reply [WORKER_MESSAGE_TIMEOUT_SECONDS; 30].",
)
@click.option(
    "--claim-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a claim waits for its reply [WORKER_CLAIM_TIMEOUT_SECONDS; 3600].",
)
@click.option(
    "--batch-logs/--no-batch-logs",
    default=None,
    help="Send logs as run:batch_logs to any coordinator [WORKER_BATCH_LOGS; off: only to "
    "one whose worker:queue join reply says it takes them, as Fulmen's does].",
)
@click.option(
    "--batch-interval",
    "batch_interval_ms",
    type=click.IntRange(min=0),
    help="Longest wait for a log batch, ms [WORKER_BATCH_LOGS_INTERVAL; 10].",
)
@click.option(
    "--batch-limit",
    type=click.IntRange(min=1),
    help="Most lines per batch [WORKER_BATCH_LOGS_LIMIT; 50].",
)
@click.option("--worker-name", help="Name sent with claims [WORKER_NAME, DEPLOYED_POD_NAME].")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds SIGTERM lets runs finish [WORKER_DRAIN_TIMEOUT_SECONDS; the run timeout].",
)
@click.option(
    "--refusal-limit",
    type=click.IntRange(min=1),
    help="Run tokens refused in a row before claiming stops [WORKER_REFUSAL_LIMIT; 3].",
)
@click.option(
    "--refusal-retry",
    type=click.FloatRange(min=0),
    help="Then claim one run every so many seconds, 0: never [WORKER_REFUSAL_RETRY_SECONDS; 600].",
)
@click.option(
    "--collections-url",
    help="The coordinator's collections API, which jobs reach through the worker "
    "[WORKER_COLLECTIONS_URL; the coordinator's address + /collections].",
)
@click.option(
    "--collections-version",
    help="@openfn/language-collections version for JavaScript jobs using collections "
    "[WORKER_COLLECTIONS_VERSION; 0.8.0].",
)
@click.option(
    "--log",
    "log_level",
    type=click.Choice(sorted(_LOG_LEVELS)),
    help="Worker log level on stderr [WORKER_LOG_LEVEL; info].",
)
@log_format_option
@sandbox_options
def worker(log_format: str, **flags: Any) -> None:
    """Claim runs from a coordinator and run each in a sandboxed child."""
    try:
        settings = settings_from(WorkerSettings.from_env(), flags)
        prepared = prepare(settings)
    except ConfigError as exc:
        raise CliError("worker", exc.message) from exc
    configure_logging(_LOG_LEVELS.get(settings.log_level, logging.INFO), log_format)
    try:
        status = run_async(serve(settings, prepared))
    except SandboxError as exc:
        raise CliError("worker", sandbox_failure(exc)) from exc
    except ConfigError as exc:  # found at start: WORKER_LANGUAGES asks what the host lacks
        raise CliError("worker", exc.message) from exc
    sys.exit(status)


def settings_from(settings: WorkerSettings, flags: dict[str, Any]) -> WorkerSettings:
    """The environment's settings with the given flags laid over them.

    Raises:
        ConfigError: ``--capacity`` with ``--workloops``, a bad ``--backoff``, or a bad
            sandbox flag.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    urls = given.pop("lightning_url", ())
    urls = (urls,) if isinstance(urls, str) else urls
    if urls:  # several flags are several replicas, as commas in the variable are
        given["lightning_url"] = ",".join(urls)
    given["sandbox"] = sandbox_settings(settings.sandbox, given)
    if "capacity" in given and "workloops" in given:
        raise ConfigError("--capacity and --workloops are exclusive; give one", code="conflict")
    if "capacity" in given:
        given["workloops"] = None  # a flag beats the other one's variable
    if "secret" in given:
        given["secret"] = Secret("--secret", given["secret"])
    if "public_key" in given:
        given["public_key"] = Secret("--lightning-public-key", given["public_key"])
    if "backoff" in given:
        given["backoff_min"], given["backoff_max"] = _backoff(given.pop("backoff"))
    return dataclasses.replace(settings, **given)


def _backoff(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("/")
    try:
        pair = (float(low), float(high))
    except ValueError:
        pair = (0.0, 0.0)
    if not sep or not 0 < pair[0] <= pair[1]:
        raise ConfigError(
            f"--backoff must be min/max in seconds with 0 < min <= max, not {text!r}",
            code="bad_value",
        )
    return pair
