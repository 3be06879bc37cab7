"""``python -m services.worker``: run one worker until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from aiohttp import web
from pydantic import ValidationError

from shared.errors import InvalidInput, StagerError
from shared.logging import configure, get_logger

from .app import create_app
from .settings import WorkerSettings


def main() -> int:
    """Load settings, then serve health/metrics while the worker runs."""
    try:
        settings = WorkerSettings()
    except ValidationError as e:
        print(
            f"worker: invalid settings: {InvalidInput.from_validation(e).message}", file=sys.stderr
        )
        return 2
    configure(settings.log_level, json=settings.log_json)
    get_logger(__name__).info("worker.settings", settings=repr(settings))
    try:
        web.run_app(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            print=None,
            handle_signals=True,
        )
    except StagerError as e:
        get_logger(__name__).error("worker.failed", error=e.message)
        print(f"worker: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
