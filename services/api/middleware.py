"""One error middleware: domain, validation and HTTP errors become JSON problems."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from services.api.keys import METRICS
from services.api.throttle import Throttled
from services.api.views import Problem
from shared.errors import ErrorKind, InvalidInput, StagerError
from shared.logging import get_logger

log = get_logger("stager.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_HINTS = {
    404: "no such endpoint: see /v1/docs for the API",
    405: "method not allowed on this path: see /v1/docs",
    413: "request body too large: send fewer jobs per request",
    415: "send the body as application/json",
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
    return HTTP_BY_KIND[e.kind][0]


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
        status = 429
        resp = problem(429, e.title, e.message, exit_code=101)
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
        hint = _HTTP_HINTS.get(e.status, e.reason)
        return problem(e.status, e.reason, hint)
    except Exception as e:
        log.exception("unhandled error", path=request.path, error=type(e).__name__)
        return problem(500, "internal error", "internal error; the operators have the details")
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
