"""Prometheus metrics of the API (one registry per app, so tests can build many)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.messaging.signing import rejected_counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
JOB_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class Throttle:
    """``due()`` is true at most once per ``every`` seconds (the first call is due)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last = -float("inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.every:
            return False
        self._last = now
        return True


class Metrics:
    """Counters, gauges and histograms; values in seconds and bytes."""

    def __init__(self, gauge_max_age: float = 1.0) -> None:
        #: Store and queue gauges are re-read at most this often, however often scraped.
        self.gauges_due = Throttle(gauge_max_age)
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_total = Counter("stager_jobs", "Jobs that entered a state", ["state"], registry=r)
        self.jobs_current = Gauge(
            "stager_jobs_current", "Jobs in the store per state", ["state"], registry=r
        )
        self.dependency_up = Gauge(
            "stager_api_dependency_up",
            "1 if the last read of the dependency (store, broker) for /metrics succeeded",
            ["dependency"],
            registry=r,
        )
        self.queue_messages = Gauge(
            "stager_queue_messages", "Ready messages per queue", ["queue"], registry=r
        )
        self.request_seconds = Histogram(
            "stager_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.job_seconds = Histogram(
            "stager_job_duration_seconds",
            "Submit to completion of a job",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.rejected_total = Counter(
            "stager_jobs_rejected", "Submitted jobs refused", ["status"], registry=r
        )
        self.events_total = Counter(
            "stager_events",
            "Task events from workers handed to the store, by whether they changed a row",
            ["applied"],
            registry=r,
        )
        self.event_batches_total = Counter(
            "stager_event_batches",
            "Store transactions that applied task events (one per batch, whatever its size)",
            registry=r,
        )
        self.messages_rejected = rejected_counter(r)

    def count_rejected(self, type_: str, reason: str) -> None:
        """``on_reject`` of the API's :class:`~shared.messaging.signing.Gate`."""
        self.messages_rejected.labels(type_, reason).inc()

    def render(self) -> bytes:
        """Text exposition format."""
        return generate_latest(self.registry)
