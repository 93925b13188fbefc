"""sandbox.outcome.classify: every way a child ends, as one table."""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

import pytest

from fulmen.sandbox import Limits
from fulmen.sandbox.outcome import EndedBy, classify
from fulmen.sandbox.wire import EXIT_ERROR, EXIT_OK, EXIT_OOM, EXIT_SETUP, RunHeader

LIMITS = Limits(timeout_s=2.5, memory_mb=128, cpu_s=3)
ERROR = {"type": "ValueError", "message": "bad input", "stage": "entry"}

# (code, signal, error record, ended_by, expected kind, expected message)
CASES: list[tuple[int | None, int | None, dict[str, Any] | None, EndedBy | None, str, str]] = [
    (EXIT_OK, None, None, None, "ok", "Process exited normally"),
    (EXIT_OOM, None, None, None, "oom", "Run exceeded its memory limit of 128 MB"),
    (EXIT_ERROR, None, ERROR, None, "crash", "ValueError: bad input"),
    (
        EXIT_ERROR,
        None,
        {"type": "ModuleNotFoundError", "message": "No module named 'x'", "stage": "load"},
        None,
        "crash",
        "Could not load the sandbox entry: ModuleNotFoundError: No module named 'x'",
    ),
    (
        EXIT_SETUP,
        None,
        {"type": "PermissionError", "message": "denied", "stage": "setup"},
        None,
        "crash",
        "Sandbox setup failed: PermissionError: denied",
    ),
    (EXIT_ERROR, None, None, None, "crash", f"Process exited with code: {EXIT_ERROR}"),
    (3, None, None, None, "crash", "Process exited with code: 3"),
    (None, signal.SIGSEGV, None, None, "crash", "Process killed by signal SIGSEGV"),
    (None, signal.SIGXCPU, None, None, "timeout", "Run exceeded its CPU time limit of 3s"),
    # What the worker did takes precedence over what the process then reported.
    (
        None,
        signal.SIGKILL,
        None,
        "timeout",
        "timeout",
        "Run exceeded its time limit of 2.5s and was killed",
    ),
    (None, signal.SIGKILL, None, "kill", "killed", "Run was killed on request"),
    (EXIT_OK, None, None, "kill", "killed", "Run was killed on request"),
    (
        None,
        None,
        None,
        "zygote",
        "crash",
        "Sandbox zygote exited unexpectedly; the run was lost: it died",
    ),
    (
        None,
        signal.SIGKILL,
        None,
        "protocol",
        "crash",
        "Run broke the sandbox protocol: it died",
    ),
    (None, None, None, None, "crash", "Process ended without an exit status: it died"),
]


@pytest.mark.parametrize(("code", "sig", "error", "ended_by", "kind", "message"), CASES)
def test_classify(
    code: int | None,
    sig: int | None,
    error: dict[str, Any] | None,
    ended_by: EndedBy | None,
    kind: str,
    message: str,
) -> None:
    assert classify(
        code=code, signal=sig, error=error, ended_by=ended_by, limits=LIMITS, detail="it died"
    ) == (kind, message)


def test_oom_without_a_limit_says_so() -> None:
    assert classify(code=EXIT_OOM, signal=None, error=None, ended_by=None, limits=Limits()) == (
        "oom",
        "Run ran out of memory",
    )


def test_the_cgroups_oom_kill_is_an_oom_whatever_the_signal() -> None:
    verdict = classify(
        code=None, signal=signal.SIGKILL, error=None, ended_by=None, limits=LIMITS, oom=True
    )
    assert verdict == ("oom", "Run exceeded its memory limit of 128 MB")


@pytest.mark.parametrize(("cpu", "kind"), [(4.01, "timeout"), (0.2, "crash"), (None, "crash")])
def test_a_sigkill_after_the_cpu_limit_is_a_timeout(cpu: float | None, kind: str) -> None:
    """A pid namespace's init ignores SIGXCPU; the hard limit's SIGKILL comes instead."""
    verdict = classify(
        code=None, signal=signal.SIGKILL, error=None, ended_by=None, limits=LIMITS, cpu_s=cpu
    )
    assert verdict[0] == kind


def test_a_run_header_carries_every_limit_and_rebuilds_them() -> None:
    limits = Limits(timeout_s=2.5, memory_mb=128, cpu_s=3, nofile=32, nproc=8, fsize_mb=4)
    header = RunHeader(7, "pkg.mod:fn", "/tmp/run-7", limits, duplex=True)
    record = header.to_record()
    assert record["limits"] == dataclasses.asdict(limits)
    assert RunHeader.from_record(record) == header
