"""``python -m services.api``: serve the REST API until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.serve import serve


def main() -> int:
    """Serve the API on its configured host and port."""
    return serve("api", ApiSettings, create_app, lambda s: (s.host, s.port))


if __name__ == "__main__":
    sys.exit(main())
