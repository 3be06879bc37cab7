"""The worker's status heartbeat: every ``HEARTBEAT_INTERVAL`` seconds a signed
``WorkerStatus`` on the ``<p>.workers`` fanout (hostname, slots, running task ids and the
pids of their children, the retry delay queues its settings declared), and a last one
saying ``stopping`` when the worker shuts down. Every API replica keeps the latest per
worker (``services.api.admin.workers``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from aio_pika.abc import AbstractExchange

from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import RunningChild, WorkerStatus, utcnow
from shared.messaging.signing import Signer
from shared.messaging.topology import HEARTBEAT_INTERVAL, TYPE_HEARTBEAT

log = get_logger(__name__)


def this_worker_id() -> str:
    """How this worker process names itself in heartbeats and task events: hostname:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


#: ``() -> [(task id, child pid, child start (time.monotonic()))]`` of what runs now.
RunningView = Callable[[], list[tuple[str, int, float]]]


class Heartbeat:
    """Publishes this worker's status until stopped."""

    def __init__(
        self,
        exchange: AbstractExchange,
        signer: Signer,
        *,
        slots: int,
        running: RunningView,
        interval: float = HEARTBEAT_INTERVAL,
        confirm_timeout: float = 10.0,
        retry_queues: Sequence[str] = (),
    ) -> None:
        self.exchange = exchange
        self.retry_queues = list(retry_queues)
        self.signer = signer
        self.slots = slots
        self.running = running
        self.interval = interval
        self.confirm_timeout = confirm_timeout
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = this_worker_id()
        self.started_at = utcnow()
        self._task: asyncio.Task[None] | None = None

    def status(self, *, stopping: bool = False) -> WorkerStatus:
        """What the next beat says."""
        now = time.monotonic()
        return WorkerStatus(
            worker_id=self.worker_id,
            hostname=self.hostname,
            pid=self.pid,
            slots=self.slots,
            running=[
                RunningChild(task_id=t, pid=pid, running_s=round(max(0.0, now - began), 1))
                for t, pid, began in self.running()[:1024]
            ],
            interval=self.interval,
            retry_queues=self.retry_queues,
            stopping=stopping,
            started_at=self.started_at,
        )

    async def beat(self, *, stopping: bool = False) -> None:
        """Publish one status; a broker without any API listening is not an error."""
        body = self.status(stopping=stopping).model_dump_json().encode()
        message = broker.make_message(
            body, message_id=uuid.uuid4().hex, type_=TYPE_HEARTBEAT, signer=self.signer
        )
        with contextlib.suppress(broker.PublishUnroutable):  # no API replica bound yet
            await broker.publish(self.exchange, message, "", timeout=self.confirm_timeout)

    def start(self) -> None:
        """Beat now and every ``interval`` seconds."""
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as e:  # the broker may be reconnecting: beat again later
                log.warning("heartbeat.failed", error=type(e).__name__)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop beating and say so (bounded: the broker may be gone)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.confirm_timeout):
                await self.beat(stopping=True)
