"""``python -m services.ui``: serve the researcher web UI until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from services.ui.app import create_app
from services.ui.settings import UiSettings
from shared.serve import serve


def main() -> int:
    """Serve the UI on its configured host and port."""
    return serve("ui", UiSettings, create_app, lambda s: (s.host, s.port))


if __name__ == "__main__":
    sys.exit(main())
