"""isync's exceptions: a shallow hierarchy under the project's root error, a translator
for iRODS errors, and what each stands for: a kind (what the worker reports, and whether a
retry can help), hence an exit status (:func:`exit_status_for`; the codes are
``shared.errors.ExitStatus``, one vocabulary for every command).

::

    StagerError (shared.errors)
    └── IsyncError                1 failed (failed)       exit status (kind)
        ├── UsageError            2 usage (invalid)
        ├── AuthenticationError   3 authentication (authentication)
        ├── SourceNotFound        4 not found (not_found)
        ├── PermissionDenied      5 permission denied (permission_denied)
        ├── Interrupted           130 interrupted (interrupted)
        ├── ConnectionFailed      1 failed (unavailable)
        ├── ChecksumMismatch      1 failed (failed)
        └── DestinationExists     1 failed (failed)
"""

from __future__ import annotations

import errno
import socket

from shared.errors import EXIT_BY_KIND, ErrorKind, ExitStatus, StagerError


class IsyncError(StagerError):
    """Root of isync errors (under the project's root); the message is one readable line
    without secrets. Its kind decides the exit status (``shared.errors.EXIT_BY_KIND``)."""

    kind = ErrorKind.FAILED
    title = "transfer failed"

    @property
    def exit_status(self) -> ExitStatus:
        """The exit status this error ends isync with."""
        return EXIT_BY_KIND.get(self.kind, ExitStatus.FAILED)


class UsageError(IsyncError):
    """Bad command line or options."""

    kind = ErrorKind.INVALID


class AuthenticationError(IsyncError):
    """iRODS refused the credentials, or none were found."""

    kind = ErrorKind.AUTHENTICATION


class SourceNotFound(IsyncError):
    """The source path does not exist."""

    kind = ErrorKind.NOT_FOUND


class PermissionDenied(IsyncError):
    """A file, directory, object or collection may not be read or written."""

    kind = ErrorKind.PERMISSION_DENIED


class ConnectionFailed(IsyncError):
    """The iRODS server could not be reached."""

    kind = ErrorKind.UNAVAILABLE


class ChecksumMismatch(IsyncError):
    """The destination's checksum differs from the source's."""


class DestinationExists(IsyncError):
    """The destination exists and differs, and --force was not given."""


class Interrupted(IsyncError):
    """The transfer was cancelled (signal or cancel event)."""

    kind = ErrorKind.INTERRUPTED


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
    return ExitStatus.FAILED
