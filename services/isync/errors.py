"""isync's exceptions: a shallow hierarchy under the project's root error, a translator
for iRODS errors, and what each stands for: a kind (what the worker reports, and whether a
retry can help), hence an exit status (:func:`exit_status_for`; the codes are
``shared.errors.ExitStatus``, one vocabulary for every command), and a file kind: why one
file failed (``shared.errors.FileErrorKind``, what :class:`FileOutcome` records as
``kind`` and the worker and the UI decide by).

::

    StagerError (shared.errors)
    └── IsyncError                1 failed (failed)       exit status (kind) file kind
        ├── UsageError            2 usage (invalid)                          other
        ├── AuthenticationError   3 authentication (authentication)          other
        ├── SourceNotFound        4 not found (not_found)                    not_found
        ├── PermissionDenied      5 permission denied (permission_denied)    permission_denied
        ├── Interrupted           130 interrupted (interrupted)              cancelled
        ├── ConnectionFailed      1 failed (unavailable)                     unavailable
        ├── ObjectBusy            1 failed (unavailable)                     unavailable
        ├── ChecksumMismatch      1 failed (failed)                          checksum_mismatch
        ├── DestinationExists     1 failed (failed)                          name_taken
        └── FileSystemError       1 failed (failed)                          io_error

    (IsyncError itself: other)
"""

from __future__ import annotations

import errno
import socket
from typing import ClassVar

from shared.errors import EXIT_BY_KIND, ErrorKind, ExitStatus, FileErrorKind, StagerError


class IsyncError(StagerError):
    """Root of isync errors (under the project's root); the message is one readable line
    without secrets. Its kind decides the exit status (``shared.errors.EXIT_BY_KIND``)."""

    kind = ErrorKind.FAILED
    title = "transfer failed"
    #: what a user can do about it: the last part of a message :func:`translate` makes
    hint = ErrorKind.FAILED.hint
    #: why a file failed, when this error is one file's (``shared.errors.FileErrorKind``)
    file_kind: ClassVar[FileErrorKind] = "other"

    @property
    def exit_status(self) -> ExitStatus:
        """The exit status this error ends isync with."""
        return EXIT_BY_KIND.get(self.kind, ExitStatus.FAILED)


class UsageError(IsyncError):
    """Bad command line or options."""

    kind = ErrorKind.INVALID
    hint = "see isync --help"


class AuthenticationError(IsyncError):
    """iRODS refused the credentials, or none were found."""

    kind = ErrorKind.AUTHENTICATION
    hint = "check the iRODS user name and password (iinit, IRODS_PASSWORD) and try again"


class SourceNotFound(IsyncError):
    """The source path does not exist."""

    kind = ErrorKind.NOT_FOUND
    file_kind = "not_found"
    hint = "check the path and its spelling (ils or ls shows what is there)"


class PermissionDenied(IsyncError):
    """A file, directory, object or collection may not be read or written."""

    kind = ErrorKind.PERMISSION_DENIED
    file_kind = "permission_denied"
    hint = "ask the owner for access, or choose another source or destination"


class ConnectionFailed(IsyncError):
    """The iRODS server could not be reached."""

    kind = ErrorKind.UNAVAILABLE
    file_kind = "unavailable"
    hint = "check the host and port, then try again (it resumes where it stopped)"


class ObjectBusy(IsyncError):
    """Another client is writing the object: the zone lets nobody else read or write it
    until that write has finished (a retry later can succeed)."""

    kind = ErrorKind.UNAVAILABLE
    file_kind = "unavailable"
    hint = "try again once that write has finished"


class ChecksumMismatch(IsyncError):
    """The destination's checksum differs from the source's."""

    file_kind = "checksum_mismatch"

    hint = "run it again (the file is copied anew); if it differs again, tell the operators"


class DestinationExists(IsyncError):
    """The destination exists and differs, and --force was not given (or the other kind
    of entry is where this one goes)."""

    file_kind = "name_taken"

    hint = "use -f to overwrite it, or choose another destination"


class Interrupted(IsyncError):
    """The transfer was cancelled (signal or cancel event)."""

    kind = ErrorKind.INTERRUPTED
    file_kind = "cancelled"
    hint = ErrorKind.INTERRUPTED.hint


class FileSystemError(IsyncError):
    """The local filesystem refused a read or write (disk full, quota, read-only, name too
    long, something in the way), or a file changed while it was read."""

    file_kind = "io_error"
    hint = "free space or fix what the message names, then run it again (it resumes)"


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


#: what a zone answers while another client writes the object (``voting.cpp``,
#: ``logical_locking.cpp``); INTERMEDIATE_REPLICA_ACCESS has no python-irodsclient class
_BUSY = {"HIERARCHY_ERROR", "LOCKED_DATA_OBJECT_ACCESS", "INTERMEDIATE_REPLICA_ACCESS"}
#: error codes python-irodsclient 3.3 has no class for (it raises ``KeyError(code)``)
_UNKNOWN_TO_PRC = {
    -129000: "PATH_REG_NOT_ALLOWED",
    -405000: "INTERMEDIATE_REPLICA_ACCESS",
}


def _names(exc: BaseException) -> set[str]:
    names = {cls.__name__ for cls in type(exc).__mro__}
    code = _prc_key_error(exc)
    if code is not None:
        names.add(_UNKNOWN_TO_PRC.get(code, f"iRODS error {code}"))
    return names


def _prc_key_error(exc: BaseException) -> int | None:
    """The iRODS code of python-irodsclient's ``KeyError(code)`` for a code it lacks."""
    if type(exc) is KeyError and len(exc.args) == 1 and isinstance(exc.args[0], int):
        return exc.args[0] if exc.args[0] < 0 else None
    return None


def _invisible_collection(exc: BaseException, names: set[str]) -> bool:
    """A real zone's answer to a write under a collection the user cannot see:
    SYS_INVALID_INPUT_PARAM, "a valid zone name does not appear at the root of the object
    path" (the path is resolved with the user's view of the catalog)."""
    return "SYS_INVALID_INPUT_PARAM" in names and "zone name" in str(exc)


#: what to do about an OS error a user can meet, by errno (others: the generic hint)
_ERRNO_HINTS = {
    errno.ENOSPC: "free space on the destination, then run it again (it resumes)",
    errno.EDQUOT: "free space within your quota, then run it again (it resumes)",
    errno.EROFS: "choose a destination on a writable filesystem",
    errno.ENAMETOOLONG: "use a shorter name or a shallower destination",
    errno.ENOTDIR: "a file is in the way of a directory: rename or remove it",
    errno.EISDIR: "a directory is in the way of a file: rename or remove it",
    errno.EEXIST: "something is in the way: rename or remove it, or choose another destination",
    errno.ENOTEMPTY: "the directory is not empty: empty it or choose another destination",
    errno.EMFILE: "raise the open-files limit (ulimit -n) or copy fewer files at once (-p)",
}


def translate(exc: BaseException, what: str = "") -> IsyncError:
    """Turn any exception into an IsyncError with a one-line message about `what`: what
    happened, then what to do (the error class's ``hint``)."""
    if isinstance(exc, IsyncError):
        return exc
    prefix = f"{what}: " if what else ""
    names = _names(exc)
    if isinstance(exc, PermissionError) or names & _PERMISSION:
        return PermissionDenied(f"{prefix}permission denied: {PermissionDenied.hint}")
    if _invisible_collection(exc, names):
        return PermissionDenied(
            f"{prefix}permission denied (the zone answers SYS_INVALID_INPUT_PARAM: a collection"
            f" on the path is not visible to this user): {PermissionDenied.hint}"
        )
    if names & _BUSY:
        which = sorted(names & _BUSY)[0]
        return ObjectBusy(
            f"{prefix}the object is being written by another client ({which}); {ObjectBusy.hint}"
        )
    if isinstance(exc, FileNotFoundError) or names & _NOT_FOUND:
        return SourceNotFound(
            f"{prefix}no such file, directory, object or collection: {SourceNotFound.hint}"
        )
    if names & _AUTH:
        return AuthenticationError(
            f"{prefix}iRODS authentication failed: {AuthenticationError.hint}"
        )
    if isinstance(exc, ConnectionError | socket.gaierror | TimeoutError) or (
        "NetworkException" in names
    ):
        return ConnectionFailed(
            f"{prefix}iRODS connection failed ({_short(exc)}): {ConnectionFailed.hint}"
        )
    if isinstance(exc, OSError) and exc.errno is None and "shrank" in str(exc):
        return FileSystemError(
            f"{prefix}{_short(exc)}: it changed while it was read; run it again once nobody"
            " writes it"
        )
    if isinstance(exc, OSError) and exc.errno is not None:
        hint = _ERRNO_HINTS.get(exc.errno, IsyncError.hint)
        symbol = errno.errorcode.get(exc.errno, "OSError")
        return FileSystemError(f"{prefix}{symbol}: {exc.strerror}: {hint}")
    unknown = _prc_key_error(exc)
    irods_hint = "try again; if it fails again, ask the iRODS administrators about this code"
    if unknown is not None:
        name = _UNKNOWN_TO_PRC.get(unknown)
        code_text = f"{name} ({unknown})" if name else str(unknown)
        return IsyncError(f"{prefix}iRODS error {code_text}: {irods_hint}")
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code < 0:
        return IsyncError(f"{prefix}iRODS error {type(exc).__name__} ({code}): {irods_hint}")
    return IsyncError(f"{prefix}{type(exc).__name__}: {_short(exc)}: {IsyncError.hint}")


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


def file_kind_of(exc: BaseException) -> FileErrorKind:
    """Why one file failed, from the error its copy raised (``other`` for what isync did
    not translate)."""
    if isinstance(exc, KeyboardInterrupt):
        return "cancelled"
    return exc.file_kind if isinstance(exc, IsyncError) else "other"
