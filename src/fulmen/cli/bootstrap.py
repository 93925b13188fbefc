"""What every ``fulmen`` command shares: its one-line errors, its logging, its event loop.

*Errors.* An expected fault (a bad flag, a missing key, a coordinator that refused) is one
line per problem on stderr, ``fulmen <command>: <what>``, and an exit status that says whose
fault it is: 2 for what the user gave (settings, files, arguments), 1 for what happened
(refused, unreachable). :class:`CliError` is the only such exception; commands raise it
rather than print.

*Logging.* Services (``server``, ``worker``, ``runner``, ``up``) log on stderr, as text for
people or as one JSON object per line for a log pipeline (``--log-format json`` or
``FULMEN_LOG_FORMAT``). A JSON line carries the time, level, logger and message, and the run,
step and worker it is about where those are bound (fulmen.logcontext), so a pipeline can
follow one run across the coordinator's and the worker's logs.

*Event loop.* ``FULMEN_EVENT_LOOP``: ``uvloop`` (the default) or ``asyncio``, one switch for
every command. uvloop because it is cheaper where the services spend their time, in callbacks,
sockets and timers: under callgrind (bench/instructions.py) the worker executes 12% fewer
instructions per run on it and the coordinator 3% fewer, and in paired rounds of
``bench/e2e.py`` both spend about a tenth less CPU per run (the runner's HTTP round trip too,
bench/runner.py). Where uvloop cannot be imported the command runs on asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import IO, Any, Final, TypeVar

import click
import orjson

from fulmen.errors import ConfigError
from fulmen.logcontext import FIELDS, LogContext

__all__ = [
    "LOG_FORMATS",
    "CliError",
    "JsonFormatter",
    "configure_logging",
    "log_format_option",
    "run_async",
]

T = TypeVar("T")

LOG_FORMATS: Final = ("text", "json")
DEFAULT_LOOP: Final = "uvloop"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Libraries that narrate every frame or request at their own INFO/DEBUG: the services' own
#: lines say what matters. The last two are the dashboard's graph layout (fast-sugiyama, its
#: Rust logging forwarded to Python's): some fifty INFO lines for each graph drawn.
_CHATTY: Final = ("websockets", "asyncio", "rust-sugiyama", "connected_components")


class CliError(click.ClickException):
    """One line per problem on stderr, each prefixed ``fulmen <command>:``.

    ``exit_code`` 2: what the user gave is at fault; 1: what happened (pass ``exit_code=1``).
    """

    def __init__(self, command: str, *lines: str, exit_code: int = 2) -> None:
        super().__init__("\n".join(lines))
        self.command = command
        self.lines = list(lines)
        # click reads exit_code from the instance; its stubs call it a class variable.
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        prefix = f"fulmen {self.command}:" if self.command else "fulmen:"
        for line in self.lines:
            click.echo(f"{prefix} {line}", err=True)


def log_format_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-format text|json`` [FULMEN_LOG_FORMAT; text]."""
    return click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        envvar="FULMEN_LOG_FORMAT",
        default="text",
        show_default=True,
        help="Log lines on stderr as text, or as one JSON object each [FULMEN_LOG_FORMAT].",
    )(function)


def configure_logging(
    level: int, log_format: str = "text", *, stream: IO[str] | None = None
) -> None:
    """One handler on the root logger, in ``log_format``, at ``level`` for Fulmen's loggers."""
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"FULMEN_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}",
            code="bad_value",
        )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(LogContext())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``message``, the bound ids
    that are set, and ``exception`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on the chosen event loop (see the module's docstring)."""
    choice = os.environ.get("FULMEN_EVENT_LOOP", DEFAULT_LOOP)
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)
    if choice != "asyncio":
        main.close()
        raise ConfigError(
            f"FULMEN_EVENT_LOOP must be uvloop or asyncio, not {choice!r}", code="bad_value"
        )
    return asyncio.run(main)
