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
from typing import TextIO

from fulmen.runtime.events import LogLine, timestamp_us
from fulmen.scrub import Scrubber

__all__ = ["LogSink", "install", "route"]

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
    """A text stream that emits one log line per completed line written to it, once a run's
    sink is installed; before that, it passes text through to the stream it replaced."""

    def __init__(self, routing: _Routing, level: str, before: TextIO) -> None:
        self._routing = routing
        self._level = level
        self._before = before
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        sink = self._routing.sink
        if sink is None:
            self._before.write(text)
            return len(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            sink.log(self._level, "JOB", line)
        return len(text)

    def flush(self) -> None:
        sink = self._routing.sink
        if sink is None:
            self._before.flush()
        elif self._buffer:
            line, self._buffer = self._buffer, ""
            sink.log(self._level, "JOB", line)


class _Handler(logging.Handler):
    def __init__(self, routing: _Routing) -> None:
        super().__init__(logging.DEBUG)
        self._routing = routing

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._routing.sink
        if sink is None:  # no run yet: what logging does with no handler at all
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)
            return
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
        sink.log(level, source, message)


class _Routing:
    """This process's stdout, stderr and root logger, wired to whichever sink is installed.

    Made once per process by :func:`route`, a warm-up the zygote runs before it forks: a run
    then only names its sink. Making the two streams and the handler and rewiring ``sys``
    and ``logging`` in each child wrote into some 80 of the zygote's pages (copy-on-write
    faults, about 250 us of a trivial run's CPU; ``bench/child.py --phases``).
    """

    def __init__(self) -> None:
        self.sink: LogSink | None = None
        self.out = _LineWriter(self, "info", sys.stdout)
        self.err = _LineWriter(self, "error", sys.stderr)
        self.handler = _Handler(self)

    def wire(self) -> None:
        """Point the streams and the root logger here, whatever was done to them since."""
        sys.stdout, sys.stderr = self.out, self.err
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(self.handler)
        root.setLevel(logging.DEBUG)
        # The runtime's own event loop logs "Using selector: ..." at debug level; that is not
        # job output, and would otherwise open every run logged at job_log_level "debug".
        logging.getLogger("asyncio").setLevel(logging.INFO)

    def is_wired(self) -> bool:
        root = logging.getLogger()
        return (
            sys.stdout is self.out
            and sys.stderr is self.err
            and root.handlers == [self.handler]
            and root.level == logging.DEBUG
        )


_routing: _Routing | None = None


def route(hint: object = None) -> None:
    """Route stdout, stderr and logging through this module for good; text and records pass
    through to where they went before until :func:`install` names a run's sink.

    A warm-up (``entry.WARM_UP``; ``hint`` is ignored): the zygote runs it before it forks,
    so every child inherits the wiring. Idempotent.
    """
    global _routing
    if _routing is None:
        _routing = _Routing()
        _routing.wire()


def install(sink: LogSink) -> None:
    """Route stdout, stderr and logging into ``sink``.

    The child is single-use, so nothing is restored afterwards.
    """
    route()
    assert _routing is not None
    # A spare's warm-ups import the run's packages, and one may have configured logging
    # (``basicConfig``) or replaced a stream: the run's output goes to its sink alone.
    if not _routing.is_wired():
        _routing.wire()
    _routing.sink = sink
    sink._flushers.extend((_routing.out.flush, _routing.err.flush))
