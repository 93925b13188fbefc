"""Exit reasons (worker-protocol.md §7.1) and how a run's reason follows from its steps.

Pure decisions, shared by the runtime (which derives them) and everything that reports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ExitReason", "Reason", "run_reason"]


class Reason(StrEnum):
    SUCCESS = "success"
    #: Job code raised; recorded in ``state.errors`` and downstream edges still run.
    FAIL = "fail"
    #: The run was aborted by a code or compile problem.
    CRASH = "crash"
    #: The run was aborted by a limit (time, memory, state size).
    KILL = "kill"
    #: The platform failed ("our fault").
    EXCEPTION = "exception"
    #: Cancelled by a user; never emitted by an OpenFn worker, mapped to ``cancelled``.
    CANCEL = "cancel"
    #: Server-side only: the worker vanished. Never sent on the wire.
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class ExitReason:
    reason: Reason
    error_type: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is Reason.SUCCESS

    def to_wire(self) -> dict[str, str | None]:
        return {
            "reason": self.reason.value,
            "error_type": self.error_type,
            "error_message": self.error_message,
        }

    def __str__(self) -> str:
        if self.ok:
            return "success"
        return (
            f"{self.reason.value}: {self.error_type or 'Error'}: {self.error_message or 'unknown'}"
        )


SUCCESS = ExitReason(Reason.SUCCESS)


def run_reason(leaves: Iterable[ExitReason]) -> ExitReason:
    """A normally completed run's reason: the first failed leaf's, else success (§7.1).

    Only leaves count, so a failure handled by an ``on_job_failure`` step downstream still
    yields a successful run.
    """
    return next((leaf for leaf in leaves if leaf.reason is Reason.FAIL), SUCCESS)
