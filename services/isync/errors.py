"""isync's exceptions: one root, a shallow hierarchy, a translator for iRODS errors, and
what each stands for: an exit status (:func:`exit_status_for`) and, for the worker, the
stager's error kind of that status (:data:`KIND_BY_STATUS`).

::

    IsyncError                  exit status (kind)
    ├── UsageError              2 usage (invalid)
    ├── AuthenticationError     3 authentication (authentication)
    ├── SourceNotFound          4 not found (not_found)
    ├── PermissionDenied        5 permission denied (permission_denied)
    ├── Interrupted             130 interrupted (interrupted)
    ├── ConnectionFailed        1 files failed (failed)
    ├── ChecksumMismatch        1 files failed (failed)
    └── DestinationExists       1 files failed (failed)
"""

from __future__ import annotations

import errno
import socket

from services.isync.status import ExitStatus
from shared.errors import ErrorKind


class IsyncError(Exception):
    """Root of isync errors; the message is one readable line without secrets."""

    exit_status = ExitStatus.FILES_FAILED


class UsageError(IsyncError):
    """Bad command line or options."""

    exit_status = ExitStatus.USAGE


class AuthenticationError(IsyncError):
    """iRODS refused the credentials, or none were found."""

    exit_status = ExitStatus.AUTHENTICATION


class SourceNotFound(IsyncError):
    """The source path does not exist."""

    exit_status = ExitStatus.NOT_FOUND


class PermissionDenied(IsyncError):
    """A file, directory, object or collection may not be read or written."""

    exit_status = ExitStatus.PERMISSION_DENIED


class ConnectionFailed(IsyncError):
    """The iRODS server could not be reached."""


class ChecksumMismatch(IsyncError):
    """The destination's checksum differs from the source's."""


class DestinationExists(IsyncError):
    """The destination exists and differs, and --force was not given."""


class Interrupted(IsyncError):
    """The transfer was cancelled (signal or cancel event)."""

    exit_status = ExitStatus.INTERRUPTED


_AUTH = {
    "CAT_INVALID_AUTHENTICATION",
    "CAT_INVALID_USER",
    "CAT_PASSWORD_EXPIRED",
    "PAM_AUTH_PASSWORD_FAILED",
    "CAT_INVALID_CLIENT_USER",
    "AUTHENTICATION_ERROR",
    "NonAnonymousLoginWithoutPassword",
}
_PERMISSION = {"CAT_NO_ACCESS_PERMISSION", "SYS_NO_API_PRIV", "CAT_INSUFFICIENT_PRIVILEGE_LEVEL"}
_NOT_FOUND = {
    "CAT_NO_ROWS_FOUND",
    "OBJ_PATH_DOES_NOT_EXIST",
    "USER_FILE_DOES_NOT_EXIST",
    "CAT_UNKNOWN_COLLECTION",
    "CAT_UNKNOWN_FILE",
    "DataObjectDoesNotExist",
    "CollectionDoesNotExist",
}


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def translate(exc: BaseException, what: str = "") -> IsyncError:
    """Turn any exception into an IsyncError with a one-line message about `what`."""
    if isinstance(exc, IsyncError):
        return exc
    prefix = f"{what}: " if what else ""
    names = _names(exc)
    if isinstance(exc, PermissionError) or names & _PERMISSION:
        return PermissionDenied(f"{prefix}permission denied")
    if isinstance(exc, FileNotFoundError) or names & _NOT_FOUND:
        return SourceNotFound(f"{prefix}no such file, directory, object or collection")
    if names & _AUTH:
        return AuthenticationError(f"{prefix}iRODS authentication failed (check user and password)")
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError) or (
        "NetworkException" in names
    ):
        return ConnectionFailed(f"{prefix}iRODS connection failed ({_short(exc)})")
    if isinstance(exc, OSError) and exc.errno is not None:
        return IsyncError(f"{prefix}{errno.errorcode.get(exc.errno, 'OSError')}: {exc.strerror}")
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code < 0:
        return IsyncError(f"{prefix}iRODS error {type(exc).__name__} ({code})")
    return IsyncError(f"{prefix}{type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def exit_status_for(exc: BaseException) -> ExitStatus:
    """The exit status a fatal (whole-run) exception stands for."""
    if isinstance(exc, KeyboardInterrupt | Interrupted):
        return ExitStatus.INTERRUPTED
    if isinstance(exc, IsyncError):
        return exc.exit_status
    return ExitStatus.FILES_FAILED


#: The stager's error kind of each failure status (whether a retry can help follows from it).
KIND_BY_STATUS: dict[ExitStatus, ErrorKind] = {
    ExitStatus.FILES_FAILED: ErrorKind.FAILED,
    ExitStatus.USAGE: ErrorKind.INVALID,
    ExitStatus.AUTHENTICATION: ErrorKind.AUTHENTICATION,
    ExitStatus.NOT_FOUND: ErrorKind.NOT_FOUND,
    ExitStatus.PERMISSION_DENIED: ErrorKind.PERMISSION_DENIED,
    ExitStatus.INTERRUPTED: ErrorKind.INTERRUPTED,
}
