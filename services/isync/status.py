"""Exit statuses of isync (``services.isync.errors.exit_status_for`` maps exceptions to them)."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes (documented in docs/isync.md)."""

    SUCCESS = 0
    FILES_FAILED = 1
    USAGE = 2
    AUTHENTICATION = 3
    NOT_FOUND = 4
    PERMISSION_DENIED = 5
    INTERRUPTED = 130
