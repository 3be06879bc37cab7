"""Prometheus metrics of the worker (one registry per worker, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.messaging.signing import rejected_counter

ATTEMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
#: Waits blow past runtime-shaped buckets under a backlog: up to a day.
WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600, 24 * 3600)


class WorkerMetrics:
    """Attempts by outcome, bytes moved, running transfers, attempt durations, waits,
    children."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.attempts = Counter(
            "stager_worker_attempts", "Task attempts by outcome", ["outcome"], registry=r
        )
        self.transfer_bytes = Counter(
            "stager_transfer_bytes", "Bytes moved", ["direction"], registry=r
        )
        self.running = Gauge("stager_worker_running", "Transfers running now", registry=r)
        self.idle_children = Gauge(
            "stager_worker_idle_children", "Children waiting for their user's next task", registry=r
        )
        self.child_tasks = Gauge(
            "stager_worker_child_tasks",
            "Tasks started since the worker started, in a new (forked) or warm (reused) child",
            ["child"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "stager_worker_attempt_duration_seconds",
            "Duration of one attempt",
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )

        self.mail_failures = Counter(
            "stager_worker_mail_failures",
            "Notification mails not sent, by where it failed (build, send); the task is not",
            ["stage"],
            registry=r,
        )
        self.wait_seconds = Histogram(
            "stager_worker_wait_seconds",
            "Submit to the start of a job's first attempt (the backlog a user waits through)",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.messages_rejected = rejected_counter(r)

    def count_rejected(self, type_: str, reason: str) -> None:
        """``on_reject`` of the worker's :class:`~shared.messaging.signing.Gate`."""
        self.messages_rejected.labels(type_, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
