"""Exit statuses of isync, and the one place that maps exceptions to them."""

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


def exit_status_for(exc: BaseException) -> ExitStatus:
    """The exit status a fatal (whole-run) exception stands for."""
    from services.isync import errors

    if isinstance(exc, KeyboardInterrupt | errors.Interrupted):
        return ExitStatus.INTERRUPTED
    if isinstance(exc, errors.IsyncError):
        return exc.exit_status
    return ExitStatus.FILES_FAILED
