"""The UI's middlewares, outermost first: security headers on every answer, errors as a
JSON problem (``/ui/…``, what the page's script calls) or as an HTML page, and the session
with its CSRF check on every state-changing request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from services.ui.keys import SESSION, SESSIONS, SETTINGS, TEMPLATES
from services.ui.sessions import CSRF_FIELD, CSRF_HEADER, cookie_name, csrf_ok
from shared.errors import ErrorKind, StagerError
from shared.logging import get_logger

log = get_logger("stager.ui")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: How each kind of error is answered.
STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.NOT_A_DIRECTORY: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.REFUSED: 403,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERRUPTED: 503,
    ErrorKind.TIMEOUT: 504,
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionExpired(StagerError):
    """The browser's session is gone (expired, logged out, or the server restarted)."""

    kind = ErrorKind.AUTHENTICATION
    title = "session expired"


class CsrfRefused(StagerError):
    """A state-changing request without this session's CSRF token."""

    kind = ErrorKind.FORBIDDEN
    title = "request refused"


def content_security_policy(issuer_origin: str) -> str:
    """Only this origin's own files; no inline script or style; forms post here (and the
    logout form's redirect goes on to the identity provider)."""
    form_action = "'self'" + (f" {issuer_origin}" if issuer_origin else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; font-src 'self'; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP, no sniffing, no framing, no referrer to other sites, no caching of pages."""
    settings = request.app[SETTINGS]
    try:
        response = await handler(request)
    except web.HTTPException as e:
        _headers(e, settings.oidc.issuer, settings.public_url, request.path)
        raise
    _headers(response, settings.oidc.issuer, settings.public_url, request.path)
    return response


def _headers(response: web.StreamResponse, issuer: str, public_url: str, path: str) -> None:
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    h = response.headers
    h["Content-Security-Policy"] = content_security_policy(origin)
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    if public_url.startswith("https://"):
        h["Strict-Transport-Security"] = "max-age=31536000"
    if not path.startswith("/static/"):
        h["Cache-Control"] = "no-store"


def wants_json(request: web.Request) -> bool:
    """The page's script calls ``/ui/…``; everything else is a browser navigation."""
    return request.path.startswith("/ui/")


def problem(status: int, title: str, message: str, code: str = "") -> web.Response:
    """A JSON problem the page's script shows as it is."""
    body = {"title": title, "status": status, "errorMessage": message, "code": code}
    return web.json_response(body, status=status)


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    """The HTML error page (auto-escaped template)."""
    html = (
        request.app[TEMPLATES]
        .get_template("error.html")
        .render(title=title, message=message, status=status)
    )
    return web.Response(status=status, text=html, content_type="text/html")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """StagerError → its status with its message; anything unexpected → 500, logged."""
    try:
        return await handler(request)
    except StagerError as e:
        status = getattr(e, "status", None) or STATUS_BY_KIND.get(e.kind, 500)
        if status >= 500:
            log.warning("ui.request_failed", path=request.path, error=e.message)
        code = "session_expired" if isinstance(e, SessionExpired) else ""
        if wants_json(request):
            return problem(status, e.title, e.message, code)
        return error_page(request, status, e.title, e.message)
    except web.HTTPException as e:
        if e.status >= 400 and wants_json(request):
            return problem(e.status, e.reason, e.text or e.reason)
        if e.status in (404, 405):
            return error_page(request, e.status, e.reason, "There is no such page here.")
        raise
    except Exception as e:  # nothing unexpected may show a traceback to the browser
        log.exception("ui.internal_error", path=request.path, error=type(e).__name__)
        message = "something went wrong on the server; try again, or tell the helpdesk"
        if wants_json(request):
            return problem(500, "internal error", message)
        return error_page(request, 500, "internal error", message)


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the live session (if any); refuse an unsafe method without its CSRF token or
    from another origin."""
    settings = request.app[SETTINGS]
    session = request.app[SESSIONS].get(request.cookies.get(cookie_name(settings.cookie_secure)))
    if session is not None:
        request[SESSION] = session
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and origin != settings.origin:
            raise CsrfRefused(f"request from another site ({origin}) refused")
        if session is None:
            raise SessionExpired("your session has expired: log in again (your selection is kept)")
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type == "application/x-www-form-urlencoded":
            given = str((await request.post()).get(CSRF_FIELD) or "")
        if not csrf_ok(session, given):
            raise CsrfRefused(
                "the request did not carry this page's security token: reload the page and "
                "try again"
            )
    return await handler(request)
