"""Login and logout: the OIDC code flow through the provider's own pages, the session it
leaves, the access token kept fresh for API calls, and logout ending the provider session."""

from __future__ import annotations

import re
import secrets
import time

from aiohttp import web

from services.ui.apiclient import ApiError
from services.ui.keys import OIDC, SESSION, SESSIONS, SETTINGS, TEMPLATES
from services.ui.middleware import SessionExpired
from services.ui.sessions import Session, clear_cookie, set_cookie
from shared.errors import InvalidInput, StagerError, Unauthenticated
from shared.logging import get_logger

log = get_logger("stager.ui")

#: A local path to return to after the login: "/" or "/something", never "//host".
_NEXT_RE = re.compile(r"^/(?!/)[A-Za-z0-9/_.~-]*$")


def session_of(request: web.Request) -> Session:
    """The logged-in session, or SessionExpired (the page then asks to log in again)."""
    session = request.get(SESSION)
    if session is None or not session.authenticated:
        raise SessionExpired("your session has expired: log in again (your selection is kept)")
    return session


async def bearer(request: web.Request) -> str:
    """A fresh access token of this session (refreshed shortly before it expires)."""
    session = session_of(request)
    tokens = session.tokens
    assert tokens is not None
    margin = request.app[SETTINGS].oidc.refresh_margin
    if tokens.expires_at - margin <= time.time():
        try:
            session.tokens = await request.app[OIDC].refresh(tokens)
        except Unauthenticated:
            request.app[SESSIONS].drop(session)
            raise SessionExpired(
                "your login has expired: log in again (your selection is kept)"
            ) from None
    assert session.tokens is not None
    return session.tokens.access_token


def api_refused_token(e: ApiError) -> bool:
    """The API answered 401: our token is no longer good."""
    return e.status == 401


async def login(request: web.Request) -> web.StreamResponse:
    """``GET /auth/login[?next=/]``: start the code flow in a fresh pre-login session."""
    settings = request.app[SETTINGS]
    next_path = request.query.get("next", "/")
    if not _NEXT_RE.match(next_path):
        next_path = "/"
    store = request.app[SESSIONS]
    old = request.get(SESSION)
    if old is not None:
        store.drop(old)
    token, session = store.new()
    url, session.pending = await request.app[OIDC].authorize_url(next_path)
    response = web.HTTPFound(url)
    set_cookie(response, token, secure=settings.cookie_secure, max_age=settings.login_lifetime)
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    """``GET /auth/callback?code=&state=``: finish the login started in this browser."""
    settings = request.app[SETTINGS]
    session = request.get(SESSION)
    if "error" in request.query:
        raise Unauthenticated(
            f"the identity provider did not log you in ({request.query['error'][:100]}): "
            "log in again"
        )
    pending = session.pending if session is not None else None
    state = request.query.get("state", "")
    if session is None or pending is None or not secrets.compare_digest(state, pending.state):
        raise InvalidInput(
            "this login was not started here or took too long: go back to the start page "
            "and log in again"
        )
    code = request.query.get("code", "")
    if not code:
        raise InvalidInput("the identity provider sent no code: log in again")
    store = request.app[SESSIONS]
    try:
        identity, tokens = await request.app[OIDC].exchange(code, pending)
    except Unauthenticated:
        store.drop(session)
        raise
    token = store.logged_in(session, identity.user, identity.name, tokens)
    log.info("ui.login", user=identity.user)
    response = web.HTTPSeeOther(pending.next_path)
    set_cookie(response, token, secure=settings.cookie_secure, max_age=settings.session_lifetime)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /auth/logout`` (CSRF-checked form): forget the session here, then end the
    provider's session (its end-session endpoint with the ID token as hint)."""
    settings = request.app[SETTINGS]
    session = request.get(SESSION)
    target = settings.post_logout_uri
    if session is not None:
        id_token = session.tokens.id_token if session.tokens else ""
        request.app[SESSIONS].drop(session)
        if id_token:
            try:
                url = await request.app[OIDC].end_session_url(id_token, settings.post_logout_uri)
            except StagerError as e:  # the provider is down: log out here at least
                log.warning("ui.logout_provider_unreachable", error=e.message)
                url = None
            target = url or target
        log.info("ui.logout", user=session.user)
    response = web.HTTPSeeOther(target)
    clear_cookie(response, secure=settings.cookie_secure)
    raise response


async def logged_out(request: web.Request) -> web.StreamResponse:
    """``GET /auth/logged-out``: where the provider sends the browser after logout."""
    html = request.app[TEMPLATES].get_template("logged_out.html").render()
    return web.Response(text=html, content_type="text/html")
