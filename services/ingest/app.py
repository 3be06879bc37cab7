"""Wiring: job store, broker connection, the ingest worker, health and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from services.ingest import policy
from services.ingest.metrics import IngestMetrics
from services.ingest.owners import ChildPolicy
from services.ingest.settings import IngestSettings
from services.ingest.store import JobStore
from services.ingest.worker import IngestWorker
from shared.errors import ConfigError, InvalidInput
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.signing import Gate, Role
from shared.messaging.topology import Names
from shared.serve import add_health

log = get_logger("stager.ingest")

SETTINGS = web.AppKey("settings", IngestSettings)
STORE = web.AppKey("store", JobStore)
CONNECTION = web.AppKey("connection", AbstractRobustConnection)
WORKER = web.AppKey("worker", IngestWorker)
SCHEDULER = web.AppKey("scheduler", asyncio.Task[None])


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The job store shared with the API and the CLI."""
    store = await JobStore.open(app[SETTINGS].ingest.db_url)
    app[STORE] = store
    yield
    await store.close()


async def broker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AMQP connection (robust: it reconnects and restores the consumers)."""
    url = app[SETTINGS].broker.url.get_secret_value()
    connection = await broker.connect(url, name="stager-ingest")
    app[CONNECTION] = connection
    yield
    with contextlib.suppress(Exception):
        await connection.close()


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The consumers and the scheduler; on shutdown unacked tasks go back to the queues."""
    s = app[SETTINGS]
    metrics = IngestMetrics()
    worker = IngestWorker(
        app[STORE],
        app[CONNECTION],
        s.irods.account(),
        s.ingest.concurrency,
        Names(s.broker.prefix),
        signer=s.signing.signer(Role.INGEST),
        gate=Gate(s.signing.verifier(Role.INGEST), metrics.count_rejected),
        policy=ChildPolicy(
            allowed_roots=tuple(s.ingest.allowed_roots),
            s3_endpoints=tuple(s.ingest.s3_endpoints),
            min_uid=s.ingest.min_uid,
            max_uid=s.ingest.max_uid,
            log_level=s.log_level,
            log_json=s.log_json,
            reconnect_tries=s.ingest.reconnect_tries,
            reconnect_delay=s.ingest.reconnect_delay,
        ),
        metrics=metrics,
        retention=s.ingest.retention,
        claim_lease=s.ingest.claim_lease,
    )
    app[WORKER] = worker
    try:
        await worker.start()
    except BaseException:
        await worker.close()
        raise
    app[SCHEDULER] = asyncio.create_task(worker.schedule(), name="ingest-scheduler")
    log.info("ingest.started", concurrency=s.ingest.concurrency, prefix=s.broker.prefix)
    yield
    app[SCHEDULER].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[SCHEDULER]
    await worker.close()
    log.info("ingest.stopped")


async def metrics_view(request: web.Request) -> web.Response:
    """``/metrics``: passes, tasks, files, bytes, children, rejected messages."""
    worker = request.app[WORKER]
    worker.metrics.children.set(len(worker.children))
    return web.Response(body=worker.metrics.render(), content_type="text/plain")


def create_app(settings: IngestSettings) -> web.Application:
    """The ingest worker's HTTP side (health, metrics); the worker runs in its cleanup_ctx.

    Refuses (``ConfigError``) to start without an iRODS account, signing keys, or with
    invalid allowed roots, before anything connects.
    """
    if not settings.irods.enabled:
        raise ConfigError("ingest needs an iRODS account: STAGER_IRODS__ENABLED is false")
    settings.signing.signer(Role.INGEST)
    settings.signing.verifier(Role.INGEST)
    try:
        policy.check_allowed_prefixes(settings.ingest.allowed_roots)
    except InvalidInput as e:
        raise ConfigError(e.message) from None
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([store_ctx, broker_ctx, worker_ctx])
    add_health(app, lambda a: a[WORKER].ready and not a[SCHEDULER].done())
    app.router.add_get("/metrics", metrics_view)
    return app
