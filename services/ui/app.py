"""``create_app(settings)``: the researcher web UI, one cleanup_ctx per resource."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jinja2
from aiohttp import web

from services.ui import admin, auth, views
from services.ui.apiclient import ApiClient
from services.ui.keys import API, HTTP, OIDC, REPOSITORY, SEALER, SESSIONS, SETTINGS, TEMPLATES
from services.ui.middleware import errors, security_headers, sessions
from services.ui.oidc import OidcClient
from services.ui.repository import RepoBrowser, Repository
from services.ui.sessions import Session, SessionStore
from services.ui.settings import UiSettings
from shared.crypto import Sealer
from shared.errors import ConfigError
from shared.logging import get_logger

log = get_logger("stager.ui")
HERE = Path(__file__).resolve().parent
#: Seconds between sweeps of expired sessions and idle repository connections.
SWEEP_INTERVAL = 30.0


def templates() -> jinja2.Environment:
    """Jinja2 with auto-escaping on for every template."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _ssl(ca_file: str | None) -> ssl.SSLContext:
    """Verify TLS peers (with an extra CA bundle when given); never off."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(ca_file)
    return ctx


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """One HTTP client for the API, the identity provider and WebDAV."""
    s = app[SETTINGS]
    ctx = _ssl(s.api_ca_file or s.oidc.ca_file or s.repository.webdav_ca_file)
    http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=s.api_timeout),
        connector=aiohttp.TCPConnector(ssl=ctx),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    app[HTTP] = http
    app[OIDC] = OidcClient(s.oidc, http, s.redirect_uri)
    app[API] = ApiClient(s.api_url, http)
    yield
    await http.close()


async def repository_ctx(app: web.Application) -> AsyncIterator[None]:
    """The repository login checks and their thread pool."""
    s = app[SETTINGS]
    repo = Repository(s.repository, s.irods, app[HTTP])
    app[REPOSITORY] = repo
    yield
    app[SESSIONS].clear()  # closes every open repository connection
    repo.close()


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """Drop expired sessions and close idle repository connections."""
    task = asyncio.create_task(_sweep(app), name="ui-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _sweep(app: web.Application) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        sweep_once(app)


def sweep_once(app: web.Application) -> None:
    """One sweep (also called by tests)."""
    store = app[SESSIONS]
    store.sweep()
    idle = app[SETTINGS].repository.browse_idle
    now = time.monotonic()
    for session in store.sessions():
        browser = session.extra.get("browser")
        if isinstance(browser, RepoBrowser) and now - browser.last_used > idle:
            views.close_browser(session)


def _on_drop(session: Session) -> None:
    views.close_browser(session)


def create_app(settings: UiSettings) -> web.Application:
    """Build the UI application (used by ``__main__`` and the tests)."""
    if not settings.public_keys:
        raise ConfigError(
            "no public key to seal repository passwords: set STAGER_PUBLIC_KEYS to the "
            'API\'s public key(s), a JSON list of PEM texts or ["file:/path/public.pem"]'
        )
    if not settings.oidc.issuer:
        raise ConfigError("STAGER_OIDC__ISSUER is not set: give the identity provider's URL")
    app = web.Application(
        middlewares=[security_headers, errors, sessions], client_max_size=1024 * 1024
    )
    app[SETTINGS] = settings
    app[SEALER] = Sealer.from_pem(k.encode() for k in settings.public_keys)
    app[TEMPLATES] = templates()
    app[SESSIONS] = SessionStore(
        lifetime=settings.session_lifetime,
        login_lifetime=settings.login_lifetime,
        max_sessions=settings.max_sessions,
        on_drop=_on_drop,
    )
    r = app.router
    r.add_get("/", views.index)
    r.add_get("/auth/login", auth.login)
    r.add_get("/auth/callback", auth.callback)
    r.add_post("/auth/logout", auth.logout)
    r.add_get("/auth/logged-out", auth.logged_out)
    r.add_get("/ui/session", views.get_session)
    r.add_get("/ui/local", views.list_local)
    r.add_post("/ui/repo/login", views.repo_login)
    r.add_post("/ui/repo/logout", views.repo_logout)
    r.add_get("/ui/repo", views.list_repo)
    r.add_post("/ui/repo/mkdir", views.repo_mkdir)
    r.add_get("/ui/jobs", views.list_jobs)
    r.add_post("/ui/jobs", views.submit)
    r.add_post("/ui/preview", views.preview)
    r.add_get("/ui/jobs/{id}", views.get_job)
    r.add_post("/ui/jobs/{id}/cancel", views.cancel_job)
    r.add_post("/ui/jobs/{id}/restart", views.restart_job)
    r.add_post("/ui/jobs/{id}/delete", views.delete_job)
    r.add_get("/ui/jobs/{id}/isync", views.job_command)
    r.add_get("/ui/dac/{number}", views.dac)
    r.add_get("/livez", _livez)
    admin.add_routes(app)
    r.add_static("/static", HERE / "static", append_version=False)
    app.cleanup_ctx.extend([http_ctx, repository_ctx, sweeper_ctx])
    return app


async def _livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
