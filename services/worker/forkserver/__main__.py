"""``python -m services.worker.forkserver --fd N``: the fork server (started by the worker)."""

import sys

from services.worker.forkserver.server import main

sys.exit(main())
