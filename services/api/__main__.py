"""``python -m services.api``: serve the REST API."""

from __future__ import annotations

import sys

from aiohttp import web
from pydantic import ValidationError

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.errors import ConfigError, InvalidInput
from shared.logging import configure, get_logger


def main() -> int:
    """Load settings, configure logging, run until interrupted."""
    try:
        settings = ApiSettings()
    except ValidationError as e:
        sys.stderr.write(f"invalid settings:\n{InvalidInput.from_validation(e).message}\n")
        return 2
    configure(settings.log_level, json=settings.log_json)
    try:
        app = create_app(settings)
    except ConfigError as e:
        get_logger("stager.api").error("cannot start", reason=str(e))
        return 2
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
