"""Preloaded into the zygote by ``bench/child.py --phases``: marks each step of a spare's life.

Wraps the steps of ``fulmen.sandbox.child.spare`` (and the zygote's fork) to record, at the
end of each, CLOCK_MONOTONIC (the same in every pid namespace), the process's CPU time and its
minor page faults; the run's entry then emits them as one last log line, ``phases {...}``. For
measurement only: it changes nothing the child does, but adds a few microseconds per mark.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

from fulmen.runtime import entry
from fulmen.runtime.events import LogLine, timestamp_us, to_dict
from fulmen.sandbox import child, zygote

_marks: list[tuple[str, int, int, int]] = []
_forked_at = [0]


def _mark(name: str) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ns = int((usage.ru_utime + usage.ru_stime) * 1e9)
    _marks.append((name, time.monotonic_ns(), cpu_ns, usage.ru_minflt))


def _after(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def marked(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        _mark(name)
        return result

    return marked


_fork_spare = zygote._Zygote._fork_spare


def _timed_fork_spare(self: Any) -> Any:
    _forked_at[0] = time.monotonic_ns()  # the spare inherits it
    return _fork_spare(self)


_spare = child.spare


def _marked_spare(*args: Any, **kwargs: Any) -> Any:
    _marks[:] = [("fork", _forked_at[0], 0, 0)]  # its CPU and faults count from the fork
    _mark("forked")
    return _spare(*args, **kwargs)


def _marked_receive(control_fd: int) -> Any:
    _mark("warmed")
    received = _receive_run(control_fd)
    _mark("arrived")
    return received


_receive_run = child._receive_run
_payload = child.Channel.receive_payload


def _marked_payload(self: Any, *args: Any, **kwargs: Any) -> Any:
    _mark("ready")
    payload = _payload(self, *args, **kwargs)
    _mark("payload")
    return payload


_run_workflow = entry.run_workflow


def _marked_run_workflow(payload: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    _run_workflow(payload, emit)
    _mark("ran")
    line = LogLine("info", "R/T", [f"phases {{'marks': {_marks!r}}}"], timestamp_us())
    emit(to_dict(line))


zygote._Zygote._fork_spare = _timed_fork_spare  # type: ignore[method-assign]
child.spare = _marked_spare
child._detach = _after(child._detach, "detached")
child._enter_namespaces = _after(child._enter_namespaces, "namespaces")
child._confine_in_advance = _after(child._confine_in_advance, "confined")
child._receive_run = _marked_receive
child.Channel.receive_payload = _marked_payload  # type: ignore[method-assign]
entry.run_workflow = _marked_run_workflow
