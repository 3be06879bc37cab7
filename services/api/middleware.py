"""One error middleware: domain, validation and HTTP errors become JSON problems."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from services.api.keys import METRICS, SETTINGS
from services.api.throttle import Throttled
from services.api.views import Problem
from shared.errors import ErrorKind, InvalidInput, StagerError
from shared.logging import get_logger

log = get_logger("stager.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_HINTS = {
    404: "no such endpoint: see /v1/docs for the API",
    405: "method not allowed on this path: see /v1/docs",
    408: "the request took too long to arrive: send it again",
    415: "send the body as application/json",
    431: "request headers too large: send fewer or shorter headers",
}

#: The kind an aiohttp HTTP error stands for, so its problem body gets the exit code of
#: the same error raised by our code (any other 4xx: invalid; 5xx: internal).
_KIND_BY_HTTP = {
    401: ErrorKind.AUTHENTICATION,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    503: ErrorKind.UNAVAILABLE,
    504: ErrorKind.TIMEOUT,
}


#: How each kind of error is shown: (HTTP status, the Go stager's ``exitCode``).
HTTP_BY_KIND: dict[ErrorKind, tuple[int, int]] = {
    ErrorKind.INVALID: (400, 102),
    ErrorKind.NOT_A_DIRECTORY: (400, 102),
    ErrorKind.AUTHENTICATION: (401, 100),
    ErrorKind.FORBIDDEN: (403, 100),
    ErrorKind.REFUSED: (403, 100),
    ErrorKind.PERMISSION_DENIED: (403, 100),
    ErrorKind.NOT_FOUND: (404, 100),
    ErrorKind.CONFLICT: (409, 100),
    ErrorKind.UNAVAILABLE: (503, 101),
    ErrorKind.INTERRUPTED: (503, 101),
    ErrorKind.TIMEOUT: (504, 101),
    ErrorKind.FAILED: (500, 100),
    ErrorKind.CONFIG: (500, 100),
    ErrorKind.INTERNAL: (500, 100),
}


def http_status(e: StagerError) -> int:
    """The HTTP status an error is answered with."""
    return 429 if isinstance(e, Throttled) else HTTP_BY_KIND[e.kind][0]


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    exit_code: int = 0,
    errors: list[dict[str, object]] | None = None,
) -> web.Response:
    """A JSON problem response (RFC 9457 fields plus the Go stager's names)."""
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        errorMessage=detail,
        exitCode=exit_code,
        errors=errors or [],
    )
    return web.Response(
        status=status,
        text=body.model_dump_json(),
        content_type="application/problem+json",
    )


def _exit_code(status: int) -> int:
    """The Go stager's ``exitCode`` for an HTTP error aiohttp raised itself."""
    default = ErrorKind.INVALID if status < 500 else ErrorKind.INTERNAL
    return HTTP_BY_KIND[_KIND_BY_HTTP.get(status, default)][1]


def _too_large(request: web.Request) -> str:
    """What to do about a body over the limit: it depends on what was sent."""
    settings = request.config_dict.get(SETTINGS)
    limit = settings.max_body_bytes if settings is not None else 0
    size = f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    if request.path.rstrip("/") == "/v1/jobs":
        return f"request body is larger than {size}: send fewer jobs per request"
    return (
        f"request body is larger than {size}: a single job is far smaller (its fields are "
        "at most a few KiB), so check what is sent as the body"
    )


def http_detail(request: web.Request, e: web.HTTPException) -> str:
    """The problem detail of an HTTP error aiohttp raised itself: what happened and what
    to do (a status without its own hint gets its kind's)."""
    if e.status == 413:
        return _too_large(request)
    hint = _HTTP_HINTS.get(e.status)
    if hint is not None:
        return hint
    default = ErrorKind.INVALID if e.status < 500 else ErrorKind.INTERNAL
    return f"{e.reason.lower()}: {_KIND_BY_HTTP.get(e.status, default).hint}"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every error to a problem response; log one access line per request."""
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except Throttled as e:
        status = http_status(e)
        resp = problem(status, e.title, e.message, exit_code=HTTP_BY_KIND[e.kind][1])
        resp.headers["Retry-After"] = str(e.retry_after)
        return resp
    except (StagerError, ValidationError) as e:
        err = e if isinstance(e, StagerError) else InvalidInput.from_validation(e)
        status, exit_code = HTTP_BY_KIND[err.kind]
        return problem(status, err.title, err.message, exit_code=exit_code, errors=err.errors)
    except web.HTTPException as e:
        status = e.status
        if e.status < 400:
            raise
        return problem(e.status, e.reason, http_detail(request, e), exit_code=_exit_code(e.status))
    except Exception as e:
        log.exception("unhandled error", path=request.path, error=type(e).__name__)
        return problem(
            500,
            "internal error",
            "internal error: try again; if it fails again, tell the operators the time of the"
            " request (they have the details)",
            exit_code=HTTP_BY_KIND[ErrorKind.INTERNAL][1],
        )
    finally:
        elapsed = time.perf_counter() - start
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else "unmatched"
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.request_seconds.labels(request.method, canonical, str(status)).observe(elapsed)
        if canonical not in ("/livez", "/readyz", "/metrics"):
            log.info(
                "request",
                method=request.method,
                path=canonical,
                status=status,
                ms=round(elapsed * 1000, 1),
            )
