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


#: the hint after an iRODS error the zone sent without message text
NO_TEXT_HINT = "the zone sent no message; `ierror CODE` on an iRODS host explains the code"


def error_text(exc: BaseException) -> str:
    """What a log line says about ``exc``: its text, or, when it has none (a real zone
    packs message text only when the agent added some: most python-irodsclient exceptions
    arrive with ``args == (None,)``), the iRODS error name and code and a hint, never the
    bare ``None``."""
    text = " ".join(str(exc).split())
    if text and text != "None":
        return text
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if isinstance(code, int) and code < 0:
        return f"iRODS error {name} ({code}): {NO_TEXT_HINT}"
    return f"{name} (no message)"
