"""The worker: claims whole runs from a coordinator (Fulmen's or OpenFn Lightning) over a
Phoenix Channels WebSocket, runs each in a sandboxed child, and reports every event back.

Modules, in the order a run flows through them: ``main`` (composition root, shutdown),
``connection`` (the one socket), ``channels`` (``worker:queue`` and ``run:<id>``, rejoined
across reconnects), ``workloop`` (capacity and claiming), ``run`` (one run, from token to
leave), ``events`` (runtime events to Lightning events), ``outbox`` (one run's ordered
delivery), ``health`` (liveness and metrics). The wire rules are in
``spec/worker-protocol.md``; each module cites the sections it follows.
"""

from fulmen.worker.main import Prepared, Worker, prepare, serve

__all__ = ["Prepared", "Worker", "prepare", "serve"]
