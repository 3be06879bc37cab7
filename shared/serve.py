"""How every service process starts: settings → logging → wiring → run, one way.

Each service's ``__main__`` is one call to :func:`serve`. Invalid settings are one line on
stderr (never the input values: they may be secrets) and exit 2; an error while the app
starts or runs is one line on stderr and a log line, with the exit status of its kind
(``shared.errors.EXIT_BY_KIND``); SIGINT/SIGTERM stop the app through aiohttp's cleanup
contexts (each resource is released in reverse order) and exit 0.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError

from shared.errors import ExitStatus, InvalidInput, StagerError, exit_status_of
from shared.logging import configure, get_logger
from shared.settings import StagerSettings

S = TypeVar("S", bound=StagerSettings)


def add_health(app: web.Application, ready: Callable[[web.Application], bool]) -> None:
    """``/livez`` (the process answers) and ``/readyz`` (``ready(app)``: 200, else 503)."""

    async def livez(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok = ready(request.app)
        body = {"status": "ok" if ok else "unavailable"}
        return web.json_response(body, status=200 if ok else 503)

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)


def serve(
    name: str,
    load: Callable[[], S],
    create_app: Callable[[S], web.Application],
    listen: Callable[[S], tuple[str, int]],
) -> int:
    """Run the service ``name`` until it is stopped; returns the process exit status.

    Parameters:
        name: the prefix of its stderr lines and log events (``worker``, ``ingest``, ``api``).
        load: reads the settings (from the environment).
        create_app: builds the aiohttp application from the settings.
        listen: the (host, port) the application serves on.
    """
    try:
        settings = load()
    except ValidationError as e:
        detail = InvalidInput.from_validation(e).message
        sys.stderr.write(f"{name}: invalid settings: {detail}\n")
        return int(ExitStatus.USAGE)
    configure(settings.log_level, json=settings.log_json)
    log = get_logger(f"stager.{name}")
    log.info(f"{name}.settings", settings=repr(settings))
    host, port = listen(settings)
    try:
        web.run_app(
            create_app(settings),
            host=host,
            port=port,
            access_log=None,
            print=None,
            handle_signals=True,
        )
    except StagerError as e:
        log.error(f"{name}.failed", error=e.message)
        sys.stderr.write(f"{name}: {e.message}\n")
        return int(exit_status_of(e))
    return int(ExitStatus.SUCCESS)
