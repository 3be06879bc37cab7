"""Task events back to the API: state changes and throttled progress.

``seq`` is a microsecond timestamp, strictly increasing within a process: an
attempt redelivered to another worker (after a crash) keeps producing events that
sort after the dead worker's, so the API's "newest (run, attempt, seq) wins" rule
still applies.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractExchange

from shared.messaging import broker
from shared.messaging.messages import Progress, TaskEvent, TaskMessage, TaskReport, TaskState
from shared.messaging.signing import Signer
from shared.messaging.topology import TYPE_EVENT, Names

_last_seq = 0


def next_seq() -> int:
    """A strictly increasing microsecond timestamp."""
    global _last_seq
    _last_seq = max(_last_seq + 1, time.time_ns() // 1000)
    return _last_seq


def progress_from_line(line: Mapping[str, Any]) -> Progress:
    """A child's progress line (isync ProgressEvent fields) → event Progress."""
    done = int(line.get("files_done") or 0) + int(line.get("files_skipped") or 0)
    eta = line.get("eta")
    return Progress(
        files_total=int(line.get("files_total") or 0),
        files_processed=done,
        files_failed=int(line.get("files_failed") or 0),
        bytes_total=int(line.get("bytes_total") or 0),
        bytes_done=int(line.get("bytes_done") or 0),
        rate=max(0.0, float(line.get("rate") or 0.0)),
        eta=max(0.0, float(eta)) if eta is not None else None,
    )


class EventPublisher:
    """Publishes TaskEvents, signed as a worker, with confirms on the events exchange."""

    def __init__(
        self,
        exchange: AbstractExchange,
        names: Names,
        confirm_timeout: float = 10.0,
        *,
        signer: Signer,
        worker_id: str | None = None,
    ):
        self.exchange = exchange
        self.worker_id = worker_id
        self.signer = signer
        self.routing_key = names.events_queue
        self.confirm_timeout = confirm_timeout

    async def emit(
        self,
        msg: TaskMessage,
        state: TaskState,
        *,
        progress: Progress | None = None,
        error: str | None = None,
        next_at: datetime | None = None,
        report: TaskReport | None = None,
        error_kind: str | None = None,
    ) -> TaskEvent:
        event = TaskEvent(
            task_id=msg.task_id,
            run=msg.run,
            attempt=msg.attempt,
            seq=next_seq(),
            state=state,
            progress=progress,
            error=error[:4000] if error else None,
            next_at=next_at,
            report=report,
            worker=self.worker_id,
            error_kind=error_kind,
        )
        message = broker.make_message(
            event.model_dump_json().encode(),
            message_id=msg.task_id,
            type_=TYPE_EVENT,
            signer=self.signer,
        )
        await broker.publish(self.exchange, message, self.routing_key, timeout=self.confirm_timeout)
        return event
