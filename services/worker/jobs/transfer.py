"""Zygote job ``transfer``: run the isync core as the user, report JSON lines.

Parameters (from the worker): ``src``, ``dst`` (stager URLs), ``account`` (an
``IrodsAccount`` without its password) and ``options`` (``TransferOptions``
fields). The repository password arrives as the spawn request's secret.

A reusable child keeps its iRODS session (connections already logged in) for its
next task; it only ever serves one account and password, and the session is
keyed by both anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from services.worker.forkserver.zygote import ChildOutput, at_child_exit
from shared.errors import ErrorKind, StagerError
from shared.irods import IrodsAccount

#: How many failed files a result or error line names.
MAX_FAILURES_REPORTED = 20
#: isync exit status → error kind; the kinds in _PERMANENT are not retried.
_KINDS = {
    2: "invalid",
    3: "authentication",
    4: "not_found",
    5: "permission_denied",
    130: "interrupted",
}
_PERMANENT = {"invalid", "authentication", "not_found", "permission_denied"}

#: This child's open iRODS session: (digest of account and password, session).
_session: tuple[str, Any] | None = None


class _LineSink:
    """isync ProgressSink writing the worker's JSON lines."""

    def __init__(self, out: ChildOutput) -> None:
        self.out = out

    def update(self, event: Any) -> None:
        self.out.send({"type": "progress", **event.model_dump()})

    def file_done(self, outcome: Any) -> None:
        self.out.send({"type": "file", **outcome.model_dump(include={"src", "dst", "outcome"})})


class TransferFailed(StagerError):
    """Some files failed; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, kind: str, permanent: bool) -> None:
        super().__init__(message, permanent=permanent)
        self.kind = ErrorKind(kind)


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Run one transfer; raises TransferFailed when any file failed."""
    models = importlib.import_module("services.isync.models")
    engine = importlib.import_module("services.isync.engine")
    status = importlib.import_module("services.isync.status")
    account = IrodsAccount(**params["account"], password=SecretStr(secret or ""))
    options = models.TransferOptions(**params.get("options", {}))
    errors = importlib.import_module("services.isync.errors")
    try:
        session = _session_for(account)
        report = engine.transfer(
            params["src"], params["dst"], account, options, _LineSink(out), cancel, session
        )
    except errors.IsyncError as e:
        code = status.exit_status_for(e)
        kind = _KINDS.get(int(code), "failed")
        raise TransferFailed(str(e), kind=kind, permanent=kind in _PERMANENT) from e
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    summary = {
        "files_total": report.files_total,
        "files_transferred": report.files_transferred,
        "files_skipped": report.files_skipped,
        "files_failed": report.files_failed,
        "bytes_total": report.bytes_total,
        "bytes_sent": report.bytes_sent,
        "elapsed": report.elapsed,
    }
    if report.files_failed or report.exit_status:
        lines = [_describe(o) for o in failed]
        head = f"{report.files_failed} of {report.files_total} files failed"
        shown = "; ".join(lines[:MAX_FAILURES_REPORTED])
        code = int(report.exit_status)
        if code == status.ExitStatus.INTERRUPTED:
            raise TransferFailed("transfer interrupted", kind="interrupted", permanent=False)
        permanent = bool(failed) and all(
            o.exit_status in (status.ExitStatus.PERMISSION_DENIED, status.ExitStatus.NOT_FOUND)
            for o in failed
        )
        if code in (status.ExitStatus.PERMISSION_DENIED, status.ExitStatus.NOT_FOUND):
            permanent = True
        kind = (
            "permission_denied"
            if any(o.exit_status == status.ExitStatus.PERMISSION_DENIED for o in failed)
            else "files_failed"
        )
        raise TransferFailed(f"{head}: {shown}" if shown else head, kind=kind, permanent=permanent)
    return {"summary": summary}


def _session_for(account: Any) -> Any:
    """The session of ``account``, opened by this child's first task and kept."""
    global _session
    secret = account.password.get_secret_value()
    digest = hashlib.sha256(f"{account.model_dump_json()}\0{secret}".encode()).hexdigest()
    if _session is not None and _session[0] == digest:
        return _session[1]
    _close_session()
    opened = importlib.import_module("services.isync.account").open_session(account)
    _session = (digest, opened)
    return opened


def _close_session() -> None:
    """Log the kept session out (the child is about to exit)."""
    global _session
    if _session is not None:
        with contextlib.suppress(Exception):
            _session[1].cleanup()
        _session = None


at_child_exit(_close_session)


def _describe(outcome: Any) -> str:
    why = str(outcome.error or outcome.reason or "failed")
    return why if outcome.src in why else f"{outcome.src}: {why}"
