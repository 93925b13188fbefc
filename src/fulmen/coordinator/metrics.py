"""The coordinator's Prometheus metrics, in a registry of its own (one per app, so that tests
can build many apps in one process).

Figures that describe the store (queue depth, runs queued or in flight by state, runs ended
by final state) are read from it when ``/metrics`` is scraped, so that every coordinator
sharing a PostgreSQL store reports the same numbers; the rest count what this process did.
No scrape reads the ended runs themselves: their count is kept as they end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from fulmen.lifecycle import FINAL_RUN_STATES, RunState

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_depth = Gauge(
            "fulmen_queue_depth", "Runs waiting to be claimed.", ["queue"], registry=self.registry
        )
        self.runs = Gauge(
            "fulmen_runs", "Runs queued or in flight, per state.", ["state"], registry=self.registry
        )
        self.ended = _EndedRuns()
        self.registry.register(self.ended)
        self.connected_workers = Gauge(
            "fulmen_connected_workers",
            "Worker sockets connected to this coordinator.",
            registry=self.registry,
        )
        self.claim_seconds = Histogram(
            "fulmen_claim_duration_seconds",
            "Time to answer one claim, from request to reply.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.claimed = Counter(
            "fulmen_claimed_runs", "Runs handed to workers.", registry=self.registry
        )
        self.rolled_back = Counter(
            "fulmen_rolled_back_runs",
            "Claimed runs put back in the queue (reply lost, or channel never joined).",
            registry=self.registry,
        )
        self.refused = Counter(
            "fulmen_refused_runs",
            "Claimed runs a worker refused and gave back (its run token did not verify there).",
            ["code"],
            registry=self.registry,
        )
        self.lost = Counter(
            "fulmen_lost_runs", "Runs whose worker vanished (§7.5).", registry=self.registry
        )
        self.enqueued = Counter(
            "fulmen_enqueued_runs", "Runs enqueued here.", ["source"], registry=self.registry
        )

    def observe_store(
        self, depth: Mapping[str, int], counts: Mapping[str, int], ended: Mapping[str, int]
    ) -> None:
        """Set the store's figures from a fresh read (queues and states without runs show 0)."""
        for queue in {"default", "fast_lane", "manual", *depth}:
            self.queue_depth.labels(queue).set(depth.get(queue, 0))
        for state in _LIVE_STATES:
            self.runs.labels(state.value).set(counts.get(state.value, 0))
        self.ended.totals = {state.value: ended.get(state.value, 0) for state in _ENDED_STATES}

    def render(self) -> bytes:
        return generate_latest(self.registry)


_LIVE_STATES = [state for state in RunState if state not in FINAL_RUN_STATES]
_ENDED_STATES = [state for state in RunState if state in FINAL_RUN_STATES]


class _EndedRuns(Collector):
    """``fulmen_runs_ended_total``: a counter the store keeps (``run_endings``), not this
    process, so it is exposed as read at the last scrape rather than with ``inc``."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {state.value: 0 for state in _ENDED_STATES}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "fulmen_runs_ended", "Runs ended, per final state, ever.", labels=["state"]
        )
        for state, total in self.totals.items():
            family.add_metric([state], total)
        yield family
