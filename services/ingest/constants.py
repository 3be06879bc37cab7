"""Ingest defaults (queue names and arguments are in :mod:`shared.messaging.topology`)."""

from __future__ import annotations

BODY_VERSION = 1

DEFAULT_FILES_PER_TASK = 50
DEFAULT_CONCURRENCY = 4
#: How often each worker looks for due jobs (seconds).
SCHEDULER_POLL = 0.5
