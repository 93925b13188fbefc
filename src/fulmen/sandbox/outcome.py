"""How a run ended: the :class:`ChildExit` value, and the one function that decides it.

Every way a child can end maps to one kind here, in one place (STYLE.md P4, and the
exception→close-code ladder of websockets' ``protocol.py`` it cites): the supervisor only
gathers the facts (exit code or signal, the child's last error record, whether the worker
itself ended the run and why) and calls :func:`classify`.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fulmen.sandbox.limits import Limits
from fulmen.sandbox.wire import EXIT_ERROR, EXIT_OK, EXIT_OOM, EXIT_SETUP

__all__ = ["ChildExit", "EndedBy", "ExitKind", "classify"]

ExitKind = Literal["ok", "timeout", "oom", "crash", "killed"]
"""``ok``: the entry returned (or called ``sys.exit(0)``). ``timeout``: wall-clock or CPU
limit. ``oom``: memory limit. ``killed``: :meth:`RunHandle.kill` was called (a cancel).
``crash``: anything else, with the reason in the message."""

EndedBy = Literal["timeout", "kill", "zygote", "protocol"]
"""Why the worker ended a run itself, when it did."""


@dataclass(frozen=True, slots=True)
class ChildExit:
    """How a run's process ended."""

    kind: ExitKind
    message: str
    """For people: ``"Process exited with code: 3"``, ``"ValueError: bad input"``... It can
    quote an exception raised by job code, so it may contain a credential: redact it like
    any other job output before it leaves the worker."""
    exit_code: int | None
    signal: int | None
    duration_s: float
    max_rss_kb: int | None
    output: str = ""
    """On failure, the last few KiB the process wrote to its stdout/stderr descriptors
    (C-level output, interpreter fatal errors; not ``print``, which the runtime captures).
    Job output: redact before shipping."""


def classify(
    *,
    code: int | None,
    signal: int | None,
    error: Mapping[str, Any] | None,
    ended_by: EndedBy | None,
    limits: Limits,
    detail: str = "",
    oom: bool = False,
    cpu_s: float | None = None,
) -> tuple[ExitKind, str]:
    """Decide the kind and message of a run's end.

    Args:
        code: the exit code, when the process exited.
        signal: the terminating signal, when it was killed.
        error: the child's ``error`` record (type, message, stage), if it sent one.
        ended_by: set when the worker ended the run (timeout, kill, lost zygote, bad frame);
            it takes precedence over what the process reported, which is then only the
            consequence.
        limits: the run's limits, to name them in messages.
        detail: extra words for ``protocol`` and ``zygote``.
        oom: the run's memory cgroup saw an OOM kill (the zygote then ended the run).
        cpu_s: the CPU time the process used, when the zygote reaped it.
    """
    if ended_by == "timeout":
        return "timeout", f"Run exceeded its time limit of {limits.timeout_s:g}s and was killed"
    if ended_by == "kill":
        return "killed", "Run was killed on request"
    if ended_by == "zygote":
        return "crash", f"Sandbox zygote exited unexpectedly; the run was lost{_colon(detail)}"
    if ended_by == "protocol":
        return "crash", f"Run broke the sandbox protocol{_colon(detail)}"
    if oom or code == EXIT_OOM:
        if limits.memory_mb is None:
            return "oom", "Run ran out of memory"
        return "oom", f"Run exceeded its memory limit of {limits.memory_mb} MB"
    if signal is not None:
        # A pid namespace's init ignores SIGXCPU (it has no handler): the rlimit's hard
        # limit then kills it a second later, SIGKILL after its full CPU time.
        out_of_cpu = (
            signal == signals.SIGKILL
            and limits.cpu_s is not None
            and cpu_s is not None
            and cpu_s >= limits.cpu_s
        )
        if signal == signals.SIGXCPU or out_of_cpu:
            return "timeout", f"Run exceeded its CPU time limit of {limits.cpu_s}s"
        return "crash", f"Process killed by signal {_signal_name(signal)}"
    if code == EXIT_OK:
        return "ok", "Process exited normally"
    if code in (EXIT_ERROR, EXIT_SETUP) and error is not None:
        what = f"{error.get('type', 'Error')}: {error.get('message', '')}".rstrip(": ")
        if code == EXIT_SETUP:
            return "crash", f"Sandbox setup failed: {what}"
        if error.get("stage") == "load":
            return "crash", f"Could not load the sandbox entry: {what}"
        if error.get("stage") == "payload":
            return "crash", f"Could not read the run payload: {what}"
        return "crash", what
    if code is None:
        return "crash", f"Process ended without an exit status{_colon(detail)}"
    return "crash", f"Process exited with code: {code}"


def _colon(detail: str) -> str:
    return f": {detail}" if detail else ""


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"
