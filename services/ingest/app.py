"""Wiring: job store, broker connection, the ingest worker, and the health endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from services.ingest.settings import IngestSettings
from services.ingest.store import JobStore
from services.ingest.worker import IngestWorker
from shared.errors import ConfigError
from shared.logging import get_logger
from shared.messaging import broker
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
    worker = IngestWorker(
        app[STORE],
        app[CONNECTION],
        s.irods.account(),
        s.ingest.concurrency,
        Names(s.broker.prefix),
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


def create_app(settings: IngestSettings) -> web.Application:
    """The ingest worker's HTTP side (health); the worker runs in its cleanup_ctx."""
    if not settings.irods.enabled:
        raise ConfigError("ingest needs an iRODS account: STAGER_IRODS__ENABLED is false")
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([store_ctx, broker_ctx, worker_ctx])
    add_health(app, lambda a: a[WORKER].ready and not a[SCHEDULER].done())
    return app
