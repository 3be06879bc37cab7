"""The latest heartbeat of every worker (``WorkerStatus`` on the workers fanout).

Each API replica binds its own queue to ``<p>.workers`` and keeps, per worker id, the
newest signed status it has heard; a worker unheard for ``HEARTBEAT_MISSED`` of its
intervals, or one that said it is stopping, is dropped. A beat that does not verify as
role ``worker`` is counted and ignored (:class:`~shared.messaging.signing.Gate`).
"""

from __future__ import annotations

import time

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from shared.logging import get_logger
from shared.messaging.messages import WorkerStatus
from shared.messaging.signing import Gate, Role
from shared.messaging.topology import HEARTBEAT_INTERVAL, HEARTBEAT_MISSED, TYPE_HEARTBEAT

log = get_logger("stager.api.admin")


class HeartbeatBoard:
    """Latest status per worker, aged out."""

    def __init__(self, gate: Gate, *, missed: int = HEARTBEAT_MISSED) -> None:
        self.gate = gate
        self.missed = missed
        self._latest: dict[str, tuple[WorkerStatus, float]] = {}

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Consumer callback (``no_ack``): keep the beat if it verifies and is newer."""
        max_age = HEARTBEAT_INTERVAL * self.missed
        if (
            self.gate.admit(message, type_=TYPE_HEARTBEAT, accept=[Role.WORKER], max_age=max_age)
            is None
        ):
            return
        try:
            status = WorkerStatus.model_validate_json(message.body)
        except ValidationError:
            log.warning("heartbeat.malformed", message_id=str(message.message_id or "")[:80])
            return
        self.record(status)

    def record(self, status: WorkerStatus, now: float | None = None) -> None:
        """Keep ``status`` unless a newer one of the same worker is kept already."""
        seen = self._latest.get(status.worker_id)
        if seen is not None and seen[0].at >= status.at:
            return
        if status.stopping:
            self._latest.pop(status.worker_id, None)
            return
        self._latest[status.worker_id] = (status, time.monotonic() if now is None else now)

    def workers(self, now: float | None = None) -> list[tuple[WorkerStatus, float]]:
        """(status, seconds since heard) of every live worker, by hostname; forgets the dead."""
        clock = time.monotonic() if now is None else now
        live: list[tuple[WorkerStatus, float]] = []
        for wid, (status, heard) in list(self._latest.items()):
            age = clock - heard
            if age > status.interval * self.missed:
                del self._latest[wid]
                continue
            live.append((status, age))
        return sorted(live, key=lambda sa: (sa[0].hostname, sa[0].pid))
