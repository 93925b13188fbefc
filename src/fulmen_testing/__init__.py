"""Fulmen's test support: fakes, harnesses and real processes on loopback, shared by the test
suite and the benchmarks (which import it as any package, without touching ``sys.path``).

It lives beside ``fulmen`` in ``src/`` so that the editable install puts it on the path and
mypy checks it as strictly as the code it tests; the wheel ships ``fulmen`` only.
"""
