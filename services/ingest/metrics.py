"""Prometheus metrics of an ingest worker (one registry per worker, so tests can build many)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from shared.messaging.signing import rejected_counter

#: Job counters (``services.ingest.store.COUNTERS``) that count files, by outcome.
FILE_OUTCOMES = {
    "files_created": "created",
    "files_modified": "modified",
    "files_skipped": "skipped",
    "files_failed": "failed",
    "files_excluded": "excluded",
    "files_unreadable": "unreadable",
    "files_deleted": "deleted",
}


class IngestMetrics:
    """Passes by event, tasks and files by outcome, bytes, children, rejected messages."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.passes = Counter(
            "stager_ingest_passes",
            "Ingest passes this worker started, finished, or failed (the job failed)",
            ["event"],
            registry=r,
        )
        self.tasks = Counter(
            "stager_ingest_tasks",
            "Ingest tasks this worker ran, by kind (dir, files, delete) and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.files = Counter(
            "stager_ingest_files",
            "Files (and data objects) by what ingest did with them",
            ["outcome"],
            registry=r,
        )
        self.bytes = Counter("stager_ingest_bytes", "Bytes put into iRODS by ingest", registry=r)
        self.children = Gauge(
            "stager_ingest_children", "Owner processes running ingest work now", registry=r
        )
        self.messages_rejected = rejected_counter(r)

    def count_rejected(self, type_: str, reason: str) -> None:
        """``on_reject`` of the ingest worker's :class:`~shared.messaging.signing.Gate`."""
        self.messages_rejected.labels(type_, reason).inc()

    def count_task(self, kind: str, counts: Mapping[str, int]) -> None:
        """One task's outcome and its counter deltas."""
        failed = counts.get("tasks_failed", 0) > 0
        self.tasks.labels(kind, "failed" if failed else "done").inc()
        for key, outcome in FILE_OUTCOMES.items():
            if counts.get(key):
                self.files.labels(outcome).inc(counts[key])
        if counts.get("bytes"):
            self.bytes.inc(counts["bytes"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
