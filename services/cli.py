"""``stager``: the project's console script; dispatches subcommands (``ingest ...``)."""

from __future__ import annotations

import sys

USAGE = "usage: stager ingest {start,list,stop,watch} ... (stager ingest -h for help)\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point (``stager = "services.cli:main"``)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "ingest":
        from services.ingest.cli import main as ingest_main

        return ingest_main(args[1:])
    sys.stderr.write(USAGE)
    return 0 if args and args[0] in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
