"""``python -m services.ingest``: run one ingest worker until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.serve import serve


def main() -> int:
    """Serve health while the ingest worker consumes."""
    return serve("ingest", IngestSettings, create_app, lambda s: (s.http_host, s.http_port))


if __name__ == "__main__":
    sys.exit(main())
