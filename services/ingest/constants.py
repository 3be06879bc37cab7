"""Ingest queue names and defaults, in one place (kept apart from ``shared.messaging.topology``)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "stager"
TYPE_INGEST = "stager.ingest"
BODY_VERSION = 1

DEFAULT_FILES_PER_TASK = 50
DEFAULT_CONCURRENCY = 4
#: How often each worker looks for due jobs (seconds).
SCHEDULER_POLL = 0.5
#: Redeliveries (worker crashes) of one ingest task before RabbitMQ drops it.
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class IngestNames:
    """Queue names for one prefix (tests use a unique prefix)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def dirs_queue(self) -> str:
        """Directory tasks: list, diff, fan out."""
        return f"{self.prefix}.ingest.dirs"

    @property
    def files_queue(self) -> str:
        """File-batch and delete tasks."""
        return f"{self.prefix}.ingest.files"


DEFAULT_NAMES = IngestNames()
