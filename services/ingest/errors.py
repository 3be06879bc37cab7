"""Ingest errors: a shallow hierarchy under the project's root error."""

from __future__ import annotations

from shared.errors import Conflict, ErrorKind, InvalidInput, NotFound, StagerError


class IngestError(StagerError):
    """An ingest job or task cannot proceed; ``str()`` is safe to show."""

    title = "ingest error"


class HandlerError(InvalidInput):
    """An event handler file cannot be loaded or returned something unusable."""

    title = "invalid event handler"


class JobNotFound(NotFound):
    """No ingest job by that name."""


class JobExists(Conflict):
    """An ingest job by that name is already active."""


class TargetError(IngestError):
    """The target collection is unusable (root, unknown zone, not a collection)."""

    kind = ErrorKind.INVALID
    title = "invalid target collection"


class OwnerRefused(IngestError):
    """The job's owner is not a Unix user this worker may run its work as."""

    kind = ErrorKind.FORBIDDEN
    title = "ingest owner refused"
