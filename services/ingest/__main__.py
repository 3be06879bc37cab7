"""``python -m services.ingest``: run one ingest worker until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from aiohttp import web
from pydantic import ValidationError

from shared.errors import InvalidInput, StagerError
from shared.logging import configure, get_logger

from .app import create_app
from .settings import IngestSettings


def main() -> int:
    """Load settings, then serve health while the ingest worker runs."""
    try:
        settings = IngestSettings()
    except ValidationError as e:
        print(
            f"ingest: invalid settings: {InvalidInput.from_validation(e).message}", file=sys.stderr
        )
        return 2
    configure(settings.log_level, json=settings.log_json)
    get_logger(__name__).info("ingest.settings", settings=repr(settings))
    try:
        web.run_app(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            print=None,
            handle_signals=True,
        )
    except StagerError as e:
        get_logger(__name__).error("ingest.failed", error=e.message)
        print(f"ingest: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
