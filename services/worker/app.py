"""Wiring: broker topology, fork server, consumers, and the health/metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiohttp import web

from services.worker.cancel import CancelRegistry, ControlConsumer
from services.worker.credentials import load_opener
from services.worker.dirlist import DirListResponder
from services.worker.events import EventPublisher
from services.worker.forkserver.client import ForkServer
from services.worker.heartbeat import Heartbeat, this_worker_id
from services.worker.mailer import Mailer
from services.worker.priority_slots import PrioritySlots
from services.worker.runner import Outcome, TaskRunner
from shared.irods import is_irods_path
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import TaskMessage
from shared.messaging.signing import Gate, Role
from shared.messaging.topology import (
    Names,
    Topology,
    declare_control_queue,
    declare_topology,
    retry_delays,
)
from shared.serve import add_health

from .metrics import WorkerMetrics
from .settings import WorkerSettings

log = get_logger(__name__)

#: Shutdown never waits longer than this for one broker operation.
CLOSE_STEP_TIMEOUT = 5.0


class Worker:
    """One worker process: consumes tasks, runs them in fork-server children."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.names = Names(settings.broker.prefix)
        self.topology = Topology(
            names=self.names,
            delivery_limit=settings.delivery_limit,
            retry_delays_ms=retry_delays(settings.retry.delays()),
        )
        self.metrics = WorkerMetrics()
        # both fail here, before anything starts, with a ConfigError naming the setting
        self.signer = settings.signing.signer(Role.WORKER)
        self.gate = Gate(settings.signing.verifier(Role.API), self.metrics.count_rejected)
        self.cancels = CancelRegistry()
        self.slots = PrioritySlots(settings.concurrency)
        self.connection: AbstractRobustConnection | None = None
        self.runner: TaskRunner | None = None
        self._forkserver: ForkServer | None = None
        self._forkserver_lock = asyncio.Lock()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self.heartbeat: Heartbeat | None = None

    async def forkserver(self) -> ForkServer:
        """The fork server, restarted if it died."""
        async with self._forkserver_lock:
            if self._forkserver is None or not self._forkserver.alive:
                if self._forkserver is not None:
                    log.warning("forkserver.restart")
                    await self._forkserver.close()
                s = self.settings
                self._forkserver = await ForkServer.start(
                    min_uid=s.min_uid,
                    max_uid=s.max_uid,
                    extra_kinds=s.job_kinds,
                    login=s.children,
                )
            return self._forkserver

    async def start(self) -> None:
        """Connect, declare, start the fork server and begin consuming."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        s = self.settings
        _check_state_dir(s.state_dir)
        await self.forkserver()
        self.connection = await broker.connect(
            s.broker.url.get_secret_value(), name="stager-worker"
        )
        pub = await broker.open_channel(self.connection)
        await declare_topology(pub, self.topology)
        events = EventPublisher(
            await pub.get_exchange(self.names.events_exchange),
            self.names,
            s.broker.confirm_timeout,
            signer=self.signer,
            worker_id=this_worker_id(),
        )
        self.runner = TaskRunner(
            settings=s,
            names=self.names,
            forkserver=self.forkserver,
            events=events,
            exchange=pub.default_exchange,
            cancels=self.cancels,
            mailer=Mailer(s.smtp),
            opener=load_opener(s.private_keys_dir),
            gate=self.gate,
            on_transfer=self._count,
            on_mail_failure=lambda stage: self.metrics.mail_failures.labels(stage).inc(),
            on_start=self._started,
        )
        runner = self.runner

        async def normal(message: AbstractIncomingMessage) -> None:
            async with self.slots.slot(priority=False):
                await runner.on_message(message)

        async def priority(message: AbstractIncomingMessage) -> None:
            async with self.slots.slot(priority=True):
                await runner.on_message(message)

        ctl = await broker.open_channel(self.connection)
        controls = ControlConsumer(self.cancels, self.gate, s.signing.control_max_age)
        await self._consume(await declare_control_queue(ctl, self.names), controls.on_message)
        for queue_name, callback in (
            (self.names.priority_queue, priority),
            (self.names.tasks_queue, normal),
        ):
            ch = await broker.open_channel(self.connection, prefetch=s.concurrency)
            await self._consume(await ch.get_queue(queue_name), callback)
        dead = await broker.open_channel(self.connection, prefetch=1)
        await self._consume(await dead.get_queue(self.names.dead_queue), runner.on_dead_message)
        rpc = await broker.open_channel(self.connection, prefetch=s.concurrency)
        responder = DirListResponder(
            self.forkserver,
            rpc.default_exchange,
            s.dir_timeout,
            gate=self.gate,
            signer=self.signer,
            max_age=s.signing.dirlist_max_age,
        )
        await self._consume(await rpc.get_queue(self.names.dir_rpc_queue), responder.on_message)
        self.heartbeat = Heartbeat(
            await pub.get_exchange(self.names.workers_exchange),
            self.signer,
            slots=s.concurrency,
            running=self._running_children,
            confirm_timeout=s.broker.confirm_timeout,
            retry_queues=self.topology.retry_queue_names(),
        )
        self.heartbeat.start()
        log.info("worker.started", concurrency=s.concurrency, prefix=self.names.prefix)

    def _running_children(self) -> list[tuple[str, int, float]]:
        """(task id, child pid, child start) of every running attempt (heartbeat)."""
        if self.runner is None:
            return []
        return [(t, a.child.pid, a.child.started) for t, a in self.runner.running.items()]

    async def _consume(self, queue: AbstractQueue, callback: Any) -> None:
        tag = await queue.consume(callback)
        self._consumers.append((queue, tag))

    def _started(self, msg: TaskMessage, redelivered: bool) -> None:
        """A first attempt began: how long its job waited (later ones include earlier runs)."""
        if msg.run == 1 and msg.attempt == 1 and not redelivered:
            waited = time.time() - msg.created_at.timestamp()
            self.metrics.wait_seconds.observe(max(0.0, waited))

    def _count(self, msg: TaskMessage, outcome: Outcome, seconds: float) -> None:
        self.metrics.attempts.labels(outcome.state.value).inc()
        self.metrics.attempt_seconds.observe(seconds)
        sent = int(outcome.summary.get("bytes_sent") or 0)
        if sent:
            direction = "upload" if is_irods_path(msg.task.dstURL) else "download"
            self.metrics.transfer_bytes.labels(direction).inc(sent)

    @property
    def ready(self) -> bool:
        """Broker connected and fork server alive."""
        conn_ok = self.connection is not None and not self.connection.is_closed
        return conn_ok and self._forkserver is not None and self._forkserver.alive

    async def close(self) -> None:
        """Stop consuming, stop running children, disconnect (unacked tasks go back)."""
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        for queue, tag in self._consumers:  # bounded: the broker may be unreachable
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_STEP_TIMEOUT):
                    await queue.cancel(tag)
        self._consumers.clear()
        if self.runner is not None:
            await self.runner.stop()
        if self._forkserver is not None:
            await self._forkserver.close()
        if self.connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_STEP_TIMEOUT):
                    await self.connection.close()
        log.info("worker.stopped")


def _check_state_dir(path: Path) -> None:
    """Warn when users cannot reach their resume journals (large files cannot resume)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue  # created later with 0711
        if not mode & stat.S_IXOTH:
            log.warning(
                "worker.state_dir_not_traversable",
                state_dir=str(path),
                blocked_at=str(parent),
                fix="chmod o+x it, or choose a state_dir users can reach",
            )
            return


WORKER_KEY = web.AppKey("worker", Worker)


async def _metrics(request: web.Request) -> web.Response:
    w = request.app[WORKER_KEY]
    w.metrics.running.set(len(w.runner.running) if w.runner else 0)
    if w.runner is not None:
        pool = w.runner.pool
        w.metrics.idle_children.set(len(pool.idle_pids()))
        w.metrics.child_tasks.labels("forked").set(pool.spawned)
        w.metrics.child_tasks.labels("reused").set(pool.reused)
    return web.Response(body=w.metrics.render(), content_type="text/plain")


def create_app(settings: WorkerSettings) -> web.Application:
    """The worker's HTTP side (health and metrics); the worker runs in its cleanup_ctx."""
    app = web.Application()
    app[WORKER_KEY] = Worker(settings)

    async def run_worker(app: web.Application) -> AsyncIterator[None]:
        await app[WORKER_KEY].start()
        yield
        await app[WORKER_KEY].close()

    app.cleanup_ctx.append(run_worker)
    add_health(app, lambda a: a[WORKER_KEY].ready)
    app.router.add_get("/metrics", _metrics)
    return app
