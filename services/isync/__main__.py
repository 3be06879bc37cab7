"""`python -m services.isync`."""

import sys

from services.isync.cli import main

sys.exit(main())
