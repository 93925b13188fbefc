"""The script runner: long-lived smart workers with private config, triggers and keys.

``fulmen runner`` (spec ``runner.md`` §3) serves an HTTP API on loopback. Each smart worker is
a user script living in its own sandboxed process (a duplex run of ``fulmen.sandbox``), with
handlers called on a cron schedule, for HTTP requests and for events, and bindings
(``get_config``, ``get_omni_key``) answered by the runner over the worker's own channel.

Modules, by side:

- in the worker's process (imported by the sandbox zygote, so stdlib only): ``protocol``
  (what crosses the channel), ``sdk`` (what scripts see), ``host`` (the sandbox entry);
- in the runner, pure decisions: ``spec`` (a create request), ``policy`` (key release and
  identities), ``topics``, ``hkdf``, ``scheduler`` timing on an injected ``clock``;
- in the runner, I/O: ``registry`` (SQLite), ``sealing``, ``keystore`` and ``identities``
  (the master key, omni keys, named identities), ``logbook``, ``bindings`` (the worker's
  requests), ``channel`` (one process's frames) and ``supervisor`` (one process per worker,
  restarted with backoff), ``triggers`` (runs, fetches, events), ``service`` (the runner
  itself), ``body``, ``api`` and ``app`` (HTTP).

This file imports nothing: the zygote imports ``fulmen.runner.host``, which runs it, and must
not pull in the HTTP stack.
"""
