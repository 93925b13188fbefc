"""The collections adaptor in a run without collections (issue 19): the call fails its step
with a clear CollectionsError, naming why (``fulmen run``, or the worker's network policy
``none``), and the name is in a job's scope on any adaptor when its body names it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulmen.worker.collections_gateway import NETWORK_NONE

if TYPE_CHECKING:
    from conftest import RunFn


def test_without_an_endpoint_the_error_says_collections_come_from_a_worker(run: RunFn) -> None:
    events = run('collections.get("things", "k1")\n')
    assert (events.complete.reason, events.complete.error_type) == ("fail", "CollectionsError")
    assert "given to runs by a Fulmen worker" in (events.complete.error_message or "")


def test_on_the_collections_adaptor_too(run: RunFn) -> None:
    plan = {"jobs": [{"id": "j", "adaptor": "collections", "body": 'collections.remove("t", "k")'}]}
    events = run(plan)
    assert events.complete.error_type == "CollectionsError"


def test_the_worker_s_reason_is_the_error(run: RunFn) -> None:
    """What the worker puts in the payload under the network policy ``none``."""
    events = run(
        'collections.get("t", "k")\n', collections={"collections_unavailable": NETWORK_NONE}
    )
    assert events.complete.error_type == "CollectionsError"
    assert "network policy is none" in (events.complete.error_message or "")


def test_a_job_that_does_not_name_collections_does_not_get_the_name(run: RunFn) -> None:
    events = run("fn(lambda s: {**s, 'data': {'has': 'collections' in globals()}})\n")
    assert events.final_state["data"] == {"has": False}
