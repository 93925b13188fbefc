"""Fulmen's test support: fakes, harnesses and real processes on loopback, shared by the test
suite and the benchmarks (which import it as any package, without touching ``sys.path``).

It lives beside ``fulmen`` in ``src/`` so that the editable install puts it on the path and
mypy checks it as strictly as the code it tests; the wheel ships ``fulmen`` only.

* ``clock``: the one fake clock.
* ``coordinator``: keys, a seeded workflow, a coordinator in this process on loopback, a raw
  worker socket, PostgreSQL databases.
* ``forms``: a page's workflow form as a browser would post it.
* ``e2e``: ``fulmen server`` and ``fulmen worker`` as real processes, the REST API as a
  client sees it, gated jobs; ``e2e.switch``, a TCP switch that can drop a peer's replies.
* ``oidc_provider``: an OpenID Connect provider on loopback, for the single sign-on tests.
* ``operator``: stores for the operator controls' tests.
* ``runner``: the runner in this process, and smart-worker scripts.
* ``sign_in``: users and dashboard sessions made straight in the store.
* ``up``: ``fulmen up`` as a real process.
* ``worker``: a scripted Lightning (``worker.lightning``) and a minimal one that never answers
  leaves (``worker.minimal``), for the worker's tests.
"""
