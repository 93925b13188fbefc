"""Run a named entry function in a fresh, hardened child forked from a secret-free zygote.

Used by the workflow worker and the script runner alike; knows nothing about jobs. An entry is
an importable ``"package.module:function"`` called as ``function(payload, emit)`` in the
child, where ``emit(event)`` sends one JSON object back to the worker.

Modules, in the order a run flows through them: on the worker's side ``process`` (``Zygote``),
``link`` (the control socket to the zygote) and ``handle`` (``RunHandle``, one run socket);
``wire`` and ``frames`` for what crosses the sockets; ``zygote`` (the forking loop) and
``child`` (hardening and the entry wrapper, in the fork), with ``confinement`` (what the
zygote sets up once: the runs' root, cgroups, seccomp, network), ``slots`` (host ids) and
``pools`` (the allocator's free blocks, filled before the first fork);
``namespaces``, ``cgroups``, ``network``, ``seccomp``, ``limits``, ``landlock``,
``capabilities``, ``paths`` and ``libc`` for the Linux mechanisms; ``probe``, ``isolation``
and ``outcome`` for what the host allows and how a run ended.

The names below are loaded on first use (PEP 562) rather than imported here: the zygote
imports ``fulmen.sandbox.zygote``, which runs this file, and must not pull in the worker's
side (asyncio and friends). Every page the zygote maps is copied into each fork's page
tables, so an unused import there costs every run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulmen.sandbox.handle import RunHandle
    from fulmen.sandbox.isolation import IsolationReport, Mechanism
    from fulmen.sandbox.limits import Limits
    from fulmen.sandbox.outcome import ChildExit, ExitKind
    from fulmen.sandbox.process import DEFAULT_PRELOAD, LEVELS, Zygote

__all__ = [
    "DEFAULT_PRELOAD",
    "LEVELS",
    "ChildExit",
    "ExitKind",
    "IsolationReport",
    "Limits",
    "Mechanism",
    "RunHandle",
    "Zygote",
]

_HOMES = {
    "IsolationReport": "isolation",
    "Mechanism": "isolation",
    "Limits": "limits",
    "ChildExit": "outcome",
    "ExitKind": "outcome",
    "DEFAULT_PRELOAD": "process",
    "LEVELS": "process",
    "RunHandle": "handle",
    "Zygote": "process",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fulmen.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fulmen.sandbox.{home}"), name)
    globals()[name] = value
    return value
