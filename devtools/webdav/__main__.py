"""``python -m devtools.webdav``: see :mod:`devtools.webdav.server`."""

from __future__ import annotations

import sys

from devtools.webdav.server import main

if __name__ == "__main__":
    sys.exit(main())
