"""The health server's routes, answered without a socket; the metrics' names and labels."""

from __future__ import annotations

import json

import pytest

from fulmen.worker.health import HealthServer, Metrics, Status


def server(ready: bool = True) -> tuple[HealthServer, Metrics]:
    metrics = Metrics()
    status = Status(ready=ready, active=2, capacity=5, sandbox="L1")
    return HealthServer(metrics, lambda: status, host="127.0.0.1", port=0), metrics


@pytest.mark.parametrize("path", ["/", "/livez"])
def test_liveness_is_an_empty_200_as_in_ws_worker(path: str) -> None:
    assert server(ready=False)[0].respond("GET", path) == (200, "text/plain", b"")


def test_readiness_follows_the_queue_channel() -> None:
    assert server(ready=True)[0].respond("GET", "/readyz")[0] == 200
    assert server(ready=False)[0].respond("GET", "/readyz")[0] == 503


def test_healthz_summarises() -> None:
    status, content_type, body = server()[0].respond("GET", "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {
        "status": "ok",
        "connected": True,
        "active": 2,
        "capacity": 5,
        "sandbox": "L1",
    }


def test_a_worker_that_stopped_claiming_is_unhealthy_and_says_why_but_alive() -> None:
    problem = "claiming stopped: 3 run tokens in a row did not verify (bad_signature: …)"
    status = Status(ready=True, active=0, capacity=5, sandbox="L1", problem=problem)
    health = HealthServer(Metrics(), lambda: status, host="127.0.0.1", port=0)
    code, content_type, body = health.respond("GET", "/healthz")
    assert (code, content_type) == (503, "application/json")
    assert json.loads(body) == {
        "status": "unhealthy",
        "problem": problem,
        "connected": True,
        "active": 0,
        "capacity": 5,
        "sandbox": "L1",
    }
    assert health.respond("GET", "/readyz")[0] == 503  # it takes no work
    assert health.respond("GET", "/livez")[0] == 200  # a restart as it is would not help


def test_unknown_paths_and_methods() -> None:
    health, _ = server()
    assert health.respond("GET", "/nope")[0] == 404
    assert health.respond("POST", "/metrics")[0] == 405
    assert health.respond("HEAD", "/metrics")[0] == 200


def test_metrics_are_prometheus_text_with_the_worker_counters() -> None:
    health, metrics = server()
    metrics.claimed.inc(3)
    metrics.completed.labels("success").inc(2)
    metrics.completed.labels("kill").inc()
    metrics.refused.labels("bad_signature").inc()
    metrics.active.set(1)
    metrics.capacity.set(5)
    metrics.refused_in_a_row.set(3)
    metrics.claiming_stopped.set(1)
    metrics.sandbox.info({"level": "L1", "summary": "isolation L1"})
    status, content_type, body = health.respond("GET", "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    text = body.decode()
    for line in [
        "fulmen_worker_runs_claimed_total 3.0",
        'fulmen_worker_runs_completed_total{reason="success"} 2.0',
        'fulmen_worker_runs_completed_total{reason="kill"} 1.0',
        'fulmen_worker_runs_refused_total{code="bad_signature"} 1.0',
        "fulmen_worker_runs_active 1.0",
        "fulmen_worker_capacity 5.0",
        "fulmen_worker_runs_refused_in_a_row 3.0",
        "fulmen_worker_claiming_stopped 1.0",
        'fulmen_worker_sandbox_info{level="L1",summary="isolation L1"} 1.0',
    ]:
        assert line in text.splitlines()


def test_each_worker_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.claimed.inc()
    assert b"fulmen_worker_runs_claimed_total 0.0" in second.render()
