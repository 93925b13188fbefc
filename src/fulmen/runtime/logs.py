"""Log capture inside the child: ``print``, ``logging`` and adaptor logs become log events.

Sources and levels follow worker-protocol.md §8: job output is ``JOB``, adaptor loggers
(``fulmen.adaptors.*``) are ``ADA``, the runtime's own lines are ``R/T``. ``job_log_level``
filters job output only; errors always pass unless it is ``none-really``. Every message is
scrubbed of credential values before it is emitted, and a message over the log payload limit is
replaced by a note saying so (§7.2).

A secret printed in two parts (``print(key[:5]); print(key[5:])``) is in neither line, so
each line is also checked against the one before it. A line that ends with the beginning of a
secret is held back until the next line arrives (or the step ends, or the run does): if the
two together hold a secret, both parts are masked before either is emitted. Holding only those
lines keeps every other line as prompt as before; one held for the next line keeps the time it
was written. Only two consecutive lines are joined, and only the plain values are looked for
across them (their encoded forms are masked within a line).
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from fulmen.runtime.events import LogLine, timestamp_us
from fulmen.scrub import Scrubber

__all__ = ["LogSink", "install"]

_RANK = {"debug": 0, "info": 1, "warn": 2, "success": 2, "always": 2, "error": 3}
#: The lowest rank of JOB output each ``job_log_level`` lets through.
_THRESHOLD = {"debug": 0, "info": 1, "default": 2, "none": 3, "none-really": 4}
_LOGGING_LEVELS = [
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
]


@dataclass
class _Held:
    """A line not emitted yet: a secret may begin at its end."""

    level: str
    source: str
    message: str
    timestamp: str
    step_id: str | None
    head: int  # how many of its first characters end a secret begun on the line before


class LogSink:
    """Turns log calls into scrubbed LogLine events, attributed to the active step."""

    def __init__(
        self,
        emit: Callable[[LogLine], None],
        scrubber: Scrubber,
        job_log_level: str = "info",
        payload_limit_bytes: int | None = None,
    ) -> None:
        self._emit = emit
        self._scrub = scrubber
        self._threshold = _THRESHOLD.get(job_log_level, 1)
        self._limit = payload_limit_bytes
        self._flushers: list[Callable[[], None]] = []
        self._held: _Held | None = None
        self.step_id: str | None = None

    def flush(self) -> None:
        """Emit partly written lines (``print(..., end="")``) so they keep their step, then
        the line held back, if any (the step or the run is ending)."""
        for flush in self._flushers:
            flush()
        if self._held is not None:
            self._release(self._held, 0)
            self._held = None

    def log(self, level: str, source: str, message: str) -> None:
        if source == "JOB" and _RANK.get(level, 1) < self._threshold:
            return
        line = _Held(level, source, message, timestamp_us(), self.step_id, 0)
        held, self._held = self._held, None
        if held is not None:
            tail = 0
            if held.step_id == line.step_id:
                tail, line.head = self._scrub.across(held.message, message)
            self._release(held, tail)
        if self._scrub.continues(message):
            self._held = line
        else:
            self._release(line, 0)

    def _release(self, line: _Held, tail: int) -> None:
        text = self._scrub.mask(line.message, line.head, tail)
        if self._limit is not None and len(text.encode()) > self._limit:
            mb = self._limit / 1_000_000
            text = f"(Log message redacted: exceeds {mb:g}mb memory limit)"
        self._emit(LogLine(line.level, line.source, [text], line.timestamp, line.step_id))


class _LineWriter(io.TextIOBase):
    """A text stream that emits one log line per completed line written to it."""

    def __init__(self, sink: LogSink, level: str) -> None:
        self._sink = sink
        self._level = level
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._sink.log(self._level, "JOB", line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._sink.log(self._level, "JOB", line)


class _Handler(logging.Handler):
    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        level = next((name for no, name in _LOGGING_LEVELS if record.levelno >= no), "debug")
        if record.name.startswith("fulmen.adaptors"):
            source = "ADA"
        elif record.name.startswith("fulmen.runtime"):
            source = "R/T"
        else:
            source = "JOB"
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        self._sink.log(level, source, message)


def install(sink: LogSink) -> None:
    """Route stdout, stderr and logging into ``sink``.

    The child is single-use, so nothing is restored afterwards.
    """
    out, err = _LineWriter(sink, "info"), _LineWriter(sink, "error")
    sys.stdout, sys.stderr = out, err
    sink._flushers.extend((out.flush, err.flush))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Handler(sink))
    root.setLevel(logging.DEBUG)
    # The runtime's own event loop logs "Using selector: ..." at debug level; that is not job
    # output, and would otherwise open every run logged at job_log_level "debug".
    logging.getLogger("asyncio").setLevel(logging.INFO)
