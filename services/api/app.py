"""``create_app(settings)``: the API application, one cleanup_ctx per resource."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from services.api import keys, retention
from services.api.admin.routes import admin_ctx
from services.api.auth import Authenticator, JwksCache
from services.api.bus import ApiBus, EventHandler
from services.api.dac import DacResolver
from services.api.dispatcher import Dispatcher
from services.api.metrics import Metrics
from services.api.middleware import error_middleware
from services.api.openapi import api_spec
from services.api.routes import ROUTES, add_routes
from services.api.settings import ApiSettings
from services.api.store import FINAL_STATES, TaskStore
from services.ingest import rest as ingest_rest
from shared.crypto import Sealer
from shared.errors import ConfigError
from shared.logging import get_logger
from shared.messaging.messages import TaskEvent, TaskState, utcnow
from shared.messaging.signing import Gate, Role

log = get_logger("stager.api")
VERSION = "1.0.0"


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The task store."""
    store = TaskStore(app[keys.SETTINGS].database_url)
    await store.init()
    app[keys.STORE] = store
    yield
    await store.close()


async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
    """The AMQP connection and topology."""
    settings = app[keys.SETTINGS]
    bus = ApiBus(settings.broker, signer=app[keys.SIGNER], gate=app[keys.GATE])
    await bus.start()
    app[keys.BUS] = bus
    yield
    await bus.close()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """An HTTP client (JWKS) and the authenticator."""
    settings = app[keys.SETTINGS]
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    jwks = JwksCache(settings.auth.oidc, session) if settings.auth.oidc.issuer else None
    app[keys.AUTH] = Authenticator(settings.auth, jwks)
    yield
    await session.close()


async def dac_ctx(app: web.Application) -> AsyncIterator[None]:
    """The DAC resolver and its thread pool."""
    settings = app[keys.SETTINGS]
    dac = DacResolver(settings.dac, settings.irods)
    app[keys.DAC] = dac
    yield
    dac.close()


def make_event_handler(app: web.Application) -> EventHandler:
    """Apply a batch of TaskEvents to the store (idempotent) and update metrics.

    ``stager_jobs_total{state}`` counts entries into a state: an ``active`` event that
    carries progress is a progress report within an attempt that already became active,
    not an entry.  Bytes are the worker's to count (``stager_transfer_bytes_total``).
    ``stager_events_total{applied}`` and ``stager_event_batches_total`` (one store
    transaction each) give the broker messages and store writes a job costs."""

    async def handle(events: list[TaskEvent]) -> None:
        results = await app[keys.STORE].apply_events(events)
        metrics = app[keys.METRICS]
        metrics.event_batches_total.inc()
        wake = False
        for ev, applied in zip(events, results, strict=True):
            metrics.events_total.labels("false" if applied is None else "true").inc()
            if applied is None:
                continue
            if ev.state != TaskState.ACTIVE or ev.progress is None:
                metrics.jobs_total.labels(ev.state.value).inc()
            wake = wake or ev.state in FINAL_STATES
            if ev.state == TaskState.COMPLETED:
                age = (utcnow() - applied.created_at).total_seconds()
                metrics.job_seconds.observe(max(0.0, age))
        if wake:
            app[keys.DISPATCHER].wake()

    return handle


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """Dispatcher, event consumer and retention sweeper."""
    settings = app[keys.SETTINGS]
    store, bus = app[keys.STORE], app[keys.BUS]
    dispatcher = Dispatcher(store, bus.publish_task, settings.dispatch)
    app[keys.DISPATCHER] = dispatcher
    tasks: list[asyncio.Task[None]] = []
    if settings.run_dispatcher:
        tasks.append(asyncio.create_task(dispatcher.run(), name="dispatcher"))
    if settings.run_event_consumer:
        tasks.append(
            asyncio.create_task(bus.consume_events(make_event_handler(app)), name="events")
        )
    if settings.run_retention:
        tasks.append(
            asyncio.create_task(retention.run(store, settings.retention), name="retention")
        )
    yield
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t


def create_app(settings: ApiSettings) -> web.Application:
    """Build the API application (used by ``__main__`` and the tests)."""
    if not settings.public_keys:
        raise ConfigError(
            "no public key to seal credentials: set STAGER_PUBLIC_KEYS to a JSON list of "
            'PEM texts or ["file:/path/public.pem"]'
        )
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.SEALER] = Sealer.from_pem(k.encode() for k in settings.public_keys)
    metrics = app[keys.METRICS] = Metrics()
    # both fail here, before anything starts, with a ConfigError naming the setting
    app[keys.SIGNER] = settings.signing.signer(Role.API)
    app[keys.GATE] = Gate(settings.signing.verifier(Role.WORKER), metrics.count_rejected)
    app[keys.SPEC] = api_spec([op for op, _ in ROUTES], title="data stager API", version=VERSION)
    add_routes(app)
    app.cleanup_ctx.extend([store_ctx, bus_ctx, http_ctx, dac_ctx, background_ctx])
    app.cleanup_ctx.append(admin_ctx)  # after the bus: worker heartbeats
    app.add_subapp(
        "/v1/ingest",
        ingest_rest.make_app(
            db_url=settings.ingest.db_url,
            authorize=ingest_rest.principals_allowed(
                lambda r: r.config_dict[keys.AUTH].authenticate_request(r),
                settings.ingest_managers,
            ),
            settings=settings.ingest,
        ),
    )
    return app
