"""``python -m services.worker``: run one transfer worker until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.worker.app import create_app
from services.worker.settings import WorkerSettings
from shared.serve import serve


def main() -> int:
    """Serve health and metrics while the worker consumes."""
    return serve("worker", WorkerSettings, create_app, lambda s: (s.http_host, s.http_port))


if __name__ == "__main__":
    sys.exit(main())
