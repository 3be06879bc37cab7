"""One root error for the stager's services, and the kinds every error is sorted into.

::

    StagerError                  kind (permanent?)
    ├── InvalidInput             invalid (yes): the request or the settings say what to fix
    │   ├── EnvelopeError        invalid (yes): a credential envelope is malformed or tampered
    │   └── UnknownUser          invalid (yes): shared.unix_users
    ├── Unauthenticated          authentication (yes)
    ├── Forbidden                forbidden (yes)
    │   └── UserRefused          refused (yes): root or a system account, shared.unix_users
    ├── NotFound                 not_found (yes)
    ├── Conflict                 conflict (yes)
    ├── DecryptError             internal (yes): no private key here opens the envelope
    ├── ConfigError              config (yes): settings missing or inconsistent
    └── Unavailable              unavailable (no): broker, store, iRODS or worker not answering

    isync's errors (IsyncError: usage, authentication, not found, permission denied,
    connection failed, object busy, checksum mismatch, destination exists, file system,
    interrupted) subclass the same root in isync's own errors module, each with its kind
    and its file kind (:data:`FileErrorKind`: why one file of a transfer failed).

A kind is what crosses process boundaries: the fork server's child pipe, task events and
directory-listing replies carry ``ErrorKind`` values, never exception class names. Whether
an error is worth retrying is a property of the error (``permanent``), which defaults from
its kind. How a kind is shown (HTTP status, the Go stager's exit code) is decided at the
edge that shows it: the API's error middleware (HTTP status), and :data:`EXIT_BY_KIND`
for the exit status of every command line tool.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # only annotations: importing this module does not import pydantic
    from pydantic import ValidationError


class ErrorKind(StrEnum):
    """What went wrong, in words every process agrees on."""

    INVALID = "invalid"
    AUTHENTICATION = "authentication"
    FORBIDDEN = "forbidden"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    NOT_A_DIRECTORY = "not_a_directory"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    CONFIG = "config"
    INTERNAL = "internal"

    @property
    def permanent(self) -> bool:
        """True when retrying the same request cannot succeed."""
        return self in _PERMANENT

    @property
    def hint(self) -> str:
        """What a user can do about an error of this kind, when its message has nothing
        more specific to say (every kind has one: ``tests/isync/test_errors_hints.py``)."""
        return _HINTS[self]


_PERMANENT = frozenset(
    {
        ErrorKind.INVALID,
        ErrorKind.AUTHENTICATION,
        ErrorKind.FORBIDDEN,
        ErrorKind.REFUSED,
        ErrorKind.NOT_FOUND,
        ErrorKind.NOT_A_DIRECTORY,
        ErrorKind.PERMISSION_DENIED,
        ErrorKind.CONFLICT,
        ErrorKind.CONFIG,
    }
)


_HINTS: dict[ErrorKind, str] = {
    ErrorKind.INVALID: "correct what is named and try again",
    ErrorKind.AUTHENTICATION: "check the user name and password (or token) and try again",
    ErrorKind.FORBIDDEN: "act only for yourself, or ask an administrator for this right",
    ErrorKind.REFUSED: "use a personal account, not root or a system account",
    ErrorKind.NOT_FOUND: "check the path (or job id) and its spelling",
    ErrorKind.NOT_A_DIRECTORY: "give the path of a directory",
    ErrorKind.PERMISSION_DENIED: "ask the owner for access, or choose another path",
    ErrorKind.CONFLICT: "read the current state, then retry or submit a new job",
    ErrorKind.TIMEOUT: "try again later, or give the job a longer timeout",
    ErrorKind.INTERRUPTED: "run it again: it resumes where it stopped",
    ErrorKind.UNAVAILABLE: "try again later; if it lasts, tell the operators",
    ErrorKind.FAILED: "try again; if it fails again, report this message to the operators",
    ErrorKind.CONFIG: "fix the setting named and start again",
    ErrorKind.INTERNAL: "report it to the operators (the logs have the details)",
}


#: Why one file of a transfer failed, as isync records it (``FileOutcome.kind``) and the
#: worker reports it (``FileError.kind``): the worker and the UI decide by this, never by
#: the words of the message. ``checksum_mismatch``: the copy's checksum differed
#: (ChecksumMismatch); ``name_taken``: the destination exists and differs, or the other
#: kind of entry is in the way (DestinationExists); ``permission_denied`` and ``not_found``
#: (PermissionDenied, SourceNotFound); ``io_error``: the local filesystem refused (disk
#: full, quota, read-only, name too long, the file changed while read: FileSystemError);
#: ``unavailable``: iRODS did not answer, or another client is writing the object
#: (ConnectionFailed, ObjectBusy); ``parent_failed``: its directory could not be made;
#: ``cancelled``: the transfer was stopped first (Interrupted); ``other``: anything else
#: (an iRODS error code, an unexpected exception), and what a report without a kind means.
FileErrorKind = Literal[
    "checksum_mismatch",
    "name_taken",
    "permission_denied",
    "not_found",
    "io_error",
    "unavailable",
    "parent_failed",
    "cancelled",
    "other",
]
FILE_ERROR_KINDS: tuple[FileErrorKind, ...] = get_args(FileErrorKind)


class ExitStatus(IntEnum):
    """The exit codes of every command the project ships (``isync``, ``stager ...``)."""

    SUCCESS = 0
    FAILED = 1  # some files or tasks failed, or the server or store did not answer
    USAGE = 2
    AUTHENTICATION = 3
    NOT_FOUND = 4
    PERMISSION_DENIED = 5
    INTERRUPTED = 130


#: The exit status of each kind of error (what is not listed exits FAILED).
EXIT_BY_KIND: dict[ErrorKind, ExitStatus] = {
    ErrorKind.INVALID: ExitStatus.USAGE,
    ErrorKind.CONFIG: ExitStatus.USAGE,
    ErrorKind.AUTHENTICATION: ExitStatus.AUTHENTICATION,
    ErrorKind.NOT_FOUND: ExitStatus.NOT_FOUND,
    ErrorKind.NOT_A_DIRECTORY: ExitStatus.USAGE,
    ErrorKind.FORBIDDEN: ExitStatus.PERMISSION_DENIED,
    ErrorKind.REFUSED: ExitStatus.PERMISSION_DENIED,
    ErrorKind.PERMISSION_DENIED: ExitStatus.PERMISSION_DENIED,
    ErrorKind.INTERRUPTED: ExitStatus.INTERRUPTED,
}


def exit_status_of(exc: BaseException) -> ExitStatus:
    """The exit status a command ends with when ``exc`` ends it."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    return EXIT_BY_KIND.get(kind_of(exc), ExitStatus.FAILED)


def kind_of(exc: BaseException) -> ErrorKind:
    """The kind of any exception: a stager error's own, or the OS error's meaning."""
    if isinstance(exc, StagerError):
        return exc.kind
    if isinstance(exc, PermissionError):
        return ErrorKind.PERMISSION_DENIED
    if isinstance(exc, FileNotFoundError):
        return ErrorKind.NOT_FOUND
    if isinstance(exc, NotADirectoryError):
        return ErrorKind.NOT_A_DIRECTORY
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT
    return ErrorKind.FAILED


class StagerError(Exception):
    """Root of every stager error; ``str()`` is safe to show to a client.

    Parameters:
        message: one line that says what is wrong and, where it can, what to fix.
        errors: per-field details (``{field, message}``) for validation errors.
        permanent: overrides the kind's default (a transfer whose every failed file was
            permission-denied is permanent even though its kind is ``failed``).
    """

    kind: ErrorKind = ErrorKind.INTERNAL
    title = "internal error"
    #: Retry default for this class when it differs from its kind's (None: the kind's).
    default_permanent: bool | None = None

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, object]] | None = None,
        permanent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self._permanent = permanent

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help (the default comes from ``kind``)."""
        if self._permanent is not None:
            return self._permanent
        if self.default_permanent is not None:
            return self.default_permanent
        return self.kind.permanent


class InvalidInput(StagerError):
    """The request is malformed or fails validation."""

    kind = ErrorKind.INVALID
    title = "invalid input"

    @classmethod
    def from_validation(cls, e: ValidationError, *, root: str = "") -> InvalidInput:
        """A pydantic error as one line that says what to fix, with per-field details."""
        errors = validation_errors(e, root=root)
        return cls(f"{validation_summary(errors)} ({ErrorKind.INVALID.hint})", errors=errors)


def validation_errors(e: ValidationError, *, root: str = "") -> list[dict[str, object]]:
    """Pydantic errors as ``{field, message}``, never with the input values (they may be
    secrets); ``root`` names the field of a whole-model error."""
    out: list[dict[str, object]] = []
    for err in e.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or root
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": loc, "message": msg})
    return out


def validation_summary(errors: list[dict[str, object]]) -> str:
    """One line out of :func:`validation_errors`: the first five, then how many more."""
    parts = []
    for err in errors[:5]:
        field = err.get("field")
        parts.append(f"{field}: {err['message']}" if field else str(err["message"]))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


class Unauthenticated(StagerError):
    """No, or no valid, credentials."""

    kind = ErrorKind.AUTHENTICATION
    title = "unauthenticated"


class Forbidden(StagerError):
    """Authenticated, but not allowed to do this."""

    kind = ErrorKind.FORBIDDEN
    title = "forbidden"


class NotFound(StagerError):
    """The thing does not exist or is not the caller's."""

    kind = ErrorKind.NOT_FOUND
    title = "not found"


class Conflict(StagerError):
    """The request clashes with the current state."""

    kind = ErrorKind.CONFLICT
    title = "conflict"


class EnvelopeError(InvalidInput):
    """A credential envelope is malformed, tampered or for an unknown key."""

    title = "invalid credential envelope"


class DecryptError(StagerError):
    """An envelope cannot be opened (no matching private key, or tampered)."""

    title = "credential envelope cannot be opened"
    default_permanent = True


class Unavailable(StagerError):
    """A dependency (broker, store, iRODS, worker) does not answer in time."""

    kind = ErrorKind.UNAVAILABLE
    title = "service unavailable"


class ConfigError(StagerError):
    """Settings are missing or inconsistent."""

    kind = ErrorKind.CONFIG
    title = "configuration error"
