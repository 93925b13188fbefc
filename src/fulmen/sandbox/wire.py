"""What crosses the sandbox's two kinds of socket, and the child's exit codes.

**Control socket** (worker ↔ zygote, ``SOCK_SEQPACKET``, one frame per datagram so that a
passed descriptor arrives with exactly the message it belongs to). Nothing on it is secret:

- worker → zygote: ``{"t": "run", ...}`` (a :class:`RunHeader`) with two descriptors
  attached by ``SCM_RIGHTS``: the child's end of the run socket, and the memfd that takes
  the child's stdout and stderr (the worker reads its tail when a run fails);
  ``{"t": "kill", "id": N}``.
- zygote → worker: ``{"t": "ready", ...}`` once, then per run ``{"t": "started", "id", "pid"}``
  and ``{"t": "exited", "id", "code" | "signal", "maxrss"}``, or ``{"t": "failed", "id",
  "message"}`` when no child could be started.

**Spare socket** (zygote → one pre-forked spare child, ``SOCK_SEQPACKET``): the same ``run``
frame and descriptors, passed on unchanged; end of file if the spare is not needed.

**Run socket** (worker ↔ one child, ``SOCK_STREAM`` socketpair, made by the worker per run).
The zygote only ever holds the child's end for the instant between receiving and forking, and
never reads it: the payload, which carries credentials, goes from the worker straight to the
child (DESIGN.md, "Security model").

- worker → child: ``{"payload": {...}}``, exactly once; then, for a *duplex* run only, any
  number of ``{"message": {...}}`` records (``RunHandle.send``), ended by the worker shutting
  its side for writing (``RunHandle.close_input``).
- child → worker: ``{"event": {...}}`` per ``emit``; at most one ``{"error": {"type",
  "message", "stage"}}`` when the entry fails; last, ``{"exit": code, "maxrss": kb}`` and
  end of stream, so the worker knows the outcome without waiting for the zygote to reap: the
  run concludes at the ``exit`` record, and nothing after it is read. A child killed by a
  signal sends no ``exit``: the zygote's ``exited`` report decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fulmen.sandbox.limits import Limits

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_OOM",
    "EXIT_SETUP",
    "RunHeader",
]

# Exit codes of the child's wrapper. High values so that a job calling sys.exit(1) or
# os._exit(3) is reported as "Process exited with code: N" rather than mistaken for ours.
EXIT_OK: Final = 0
EXIT_ERROR: Final = 250
"""The entry raised (or could not be loaded); an ``error`` record says what."""
EXIT_OOM: Final = 251
"""The entry raised MemoryError: the address-space limit was hit."""
EXIT_SETUP: Final = 252
"""Hardening the child failed before the entry ran; an ``error`` record says where."""


@dataclass(frozen=True, slots=True)
class RunHeader:
    """The non-secret half of a run, sent to the zygote with the run socket."""

    id: int
    entry: str
    run_dir: str
    limits: Limits
    duplex: bool = False
    """The entry is called as ``function(payload, emit, receive)`` and may read messages."""
    warm: Mapping[str, Any] | None = None
    """What spares forked after this run warm themselves up with, passed to the warm-ups
    (``Zygote.run``); never secret: the zygote keeps the latest and every spare sees it. A
    spare warmed with a hint whose ``exact`` entry differs from a run's is not used for it."""

    def to_record(self) -> dict[str, Any]:
        record = {
            "t": "run",
            "id": self.id,
            "entry": self.entry,
            "dir": self.run_dir,
            "limits": self.limits.to_record(),
        }
        if self.duplex:
            record["duplex"] = True
        if self.warm is not None:
            record["warm"] = dict(self.warm)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunHeader:
        """Rebuild a header in the zygote; raises KeyError/TypeError on a malformed one."""
        return cls(
            id=int(record["id"]),
            entry=str(record["entry"]),
            run_dir=str(record["dir"]),
            limits=Limits(**record["limits"]),
            duplex=bool(record.get("duplex", False)),
            warm=record["warm"] if isinstance(record.get("warm"), dict) else None,
        )
