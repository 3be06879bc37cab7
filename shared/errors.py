"""One root error and a shallow hierarchy; each maps to an HTTP status at the API edge."""

from __future__ import annotations


class StagerError(Exception):
    """Root of every stager error; ``str()`` is safe to show to a client."""

    status = 500
    title = "internal error"
    exit_code = 100

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class InvalidInput(StagerError):
    """The request is malformed or fails validation."""

    status = 400
    title = "invalid input"
    exit_code = 102


class Unauthenticated(StagerError):
    """No, or no valid, credentials."""

    status = 401
    title = "unauthenticated"


class Forbidden(StagerError):
    """Authenticated, but not allowed to do this."""

    status = 403
    title = "forbidden"


class NotFound(StagerError):
    """The thing does not exist or is not the caller's."""

    status = 404
    title = "not found"


class Conflict(StagerError):
    """The request clashes with the current state."""

    status = 409
    title = "conflict"


class EnvelopeError(InvalidInput):
    """A credential envelope is malformed, tampered or for an unknown key."""

    title = "invalid credential envelope"


class DecryptError(StagerError):
    """An envelope cannot be opened (no matching private key, or tampered)."""

    title = "credential envelope cannot be opened"


class Unavailable(StagerError):
    """A dependency (broker, store, iRODS, worker) does not answer in time."""

    status = 503
    title = "service unavailable"
    exit_code = 101


class ConfigError(StagerError):
    """Settings are missing or inconsistent."""

    title = "configuration error"
