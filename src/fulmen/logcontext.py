"""What a log line is about: the run, the step and the worker, carried by the task that logs it.

Why context variables rather than ``extra=`` on each call: a run's lines come from many
modules (the worker's run, its outbox, the connection resending its events; the coordinator's
run channel, the store), and each would have to be handed the ids. A task inherits its
creator's context, so binding the run id where a run's task starts labels every line that
task and the tasks it starts write, and nothing else.

:class:`LogContext` is a logging filter that copies the bound values onto each record
(``record.run_id``, ``record.step_id``, ``record.worker``), where the JSON formatter
(``fulmen.cli.bootstrap``) finds them.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["FIELDS", "LogContext", "bind", "bound"]

#: The record attributes this module sets, in the order a JSON line shows them.
FIELDS: Final = ("run_id", "step_id", "worker")

_VARS: Final = {name: contextvars.ContextVar[str | None](name, default=None) for name in FIELDS}


def bind(**values: str | None) -> None:
    """Label the lines the current task (and the tasks it starts from now on) logs.

    For the start of a task of its own (a run's, a socket's): nothing needs undoing, the
    values end with the task's context.
    """
    for name, value in values.items():
        _VARS[name].set(value)


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Label the lines logged inside the block, then restore what was bound before."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class LogContext(logging.Filter):
    """Copies the bound ids onto each record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True
