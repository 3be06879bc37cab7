"""Job ``transfer``: run the isync core as the user, report JSON lines.

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
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from services.isync import (
    ExitStatus,
    FileOutcome,
    ProgressEvent,
    TransferOptions,
    TransferReport,
    leftovers,
    transfer,
)
from services.isync.account import open_session
from services.isync.errors import IsyncError
from services.worker.forkserver.child import ChildOutput, at_child_exit
from shared.errors import ErrorKind, StagerError
from shared.irods import IrodsAccount
from shared.messaging.messages import (
    MAX_FILE_ERRORS,
    MAX_PLAN_ENTRIES,
    ChecksumResult,
    FileError,
    PlanAction,
    PlanEntry,
    PlanSummary,
    TaskReport,
    clip,
)

#: How many failed files a result or error line names.
MAX_FAILURES_REPORTED = 20
#: Run statuses, and kinds of failed files, that a retry of the task cannot cure.
_HOPELESS = (ExitStatus.PERMISSION_DENIED, ExitStatus.NOT_FOUND)
_HOPELESS_KINDS = ("permission_denied", "not_found")

#: This child's open iRODS session: (digest of account and password, session).
_session: tuple[str, Any] | None = None


@dataclass
class ChecksumTally:
    """Files moved (transferred, or skipped as unchanged) and how many of them carry an
    agreed checksum: what the report's checksum result needs, counted as outcomes pass
    instead of kept one per file."""

    moved: int = 0
    agreed: int = 0

    def add(self, o: FileOutcome) -> None:
        if o.outcome == "transferred" or (o.outcome == "skipped" and o.reason == "unchanged"):
            self.moved += 1
            self.agreed += 1 if o.checksum else 0


class _PipeSink:
    """isync ProgressSink writing the worker's ``progress`` lines (at most one per
    ``progress_interval``, as isync throttles them) and tallying checksums.

    Nothing goes out per file: the worker needs the counts (in every progress line) and
    the failed files (the ``report`` line at the end), never a line per file.  A line per
    file cost the child a write and the worker a parse for each of a tree's files, and a
    worker slow to read held the child's transfer threads on the pipe.
    """

    def __init__(self, out: ChildOutput) -> None:
        self.out = out
        self.tally = ChecksumTally()
        self._lock = threading.Lock()

    def update(self, event: ProgressEvent) -> None:
        self.out.send({"type": "progress", **event.model_dump()})

    def file_done(self, outcome: FileOutcome) -> None:
        with self._lock:
            self.tally.add(outcome)


class TransferFailed(StagerError):
    """The transfer did not complete; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, kind: ErrorKind, permanent: bool | None = None) -> None:
        super().__init__(message, permanent=permanent)
        self.kind = kind


def run_child(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Run one transfer; raises TransferFailed when it failed as a whole or any file failed
    (but a dry run only when interrupted). A ``report`` line (:func:`task_report`) goes
    out before the result or the error."""
    account = IrodsAccount(**params["account"], password=SecretStr(secret or ""))
    options = TransferOptions(**params.get("options", {}))
    sink = _PipeSink(out)
    try:
        session = _session_for(account)
        report = transfer(
            params["src"],
            params["dst"],
            account,
            options,
            sink,
            cancel,
            session,
            # memory flat in the number of files: only failed outcomes are kept (a dry
            # run's plan needs them all)
            keep_outcomes="all" if options.dry_run else "failed",
        )
    except IsyncError as e:
        raise TransferFailed(str(e), kind=e.kind) from e
    summary = task_report(report, options, None if options.dry_run else sink.tally)
    out.send({"type": "report", **summary.model_dump(mode="json")})
    dry_interrupted = options.dry_run and report.exit_status == ExitStatus.INTERRUPTED
    if (report.files_failed or report.exit_status) and (not options.dry_run or dry_interrupted):
        raise _failure(report)  # a dry run's refused files are its findings, not a failure
    if options.leftovers is not None and not options.dry_run:
        # done: stale journals and parts go, collections stay
        with contextlib.suppress(Exception):
            side = _irods_side(params, account.home)
            leftovers.clean(options.leftovers, session, side, collections=False)
    return {
        "summary": {
            "files_total": report.files_total,
            "files_transferred": report.files_transferred,
            "files_skipped": report.files_skipped,
            "files_failed": report.files_failed,
            "bytes_total": report.bytes_total,
            "bytes_sent": report.bytes_sent,
            "elapsed": report.elapsed,
        }
    }


def _failure(report: TransferReport) -> TransferFailed:
    """What a report with failed files (or a non-zero status) raises.

    Permanent when the run's status, or every failed file's kind, is permission denied
    or not found; kind ``permission_denied`` when any file was denied.
    """
    if report.exit_status == ExitStatus.INTERRUPTED:
        return TransferFailed("transfer interrupted", kind=ErrorKind.INTERRUPTED)
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    head = f"{report.files_failed} of {report.files_total} files failed"
    shown = "; ".join(_describe(o) for o in failed[:MAX_FAILURES_REPORTED])
    permanent = report.exit_status in _HOPELESS or (
        bool(failed) and all(o.kind in _HOPELESS_KINDS for o in failed)
    )
    denied = any(o.kind == "permission_denied" for o in failed)
    return TransferFailed(
        f"{head}: {shown}" if shown else head,
        kind=ErrorKind.PERMISSION_DENIED if denied else ErrorKind.FAILED,
        permanent=permanent,
    )


def task_report(
    report: TransferReport, options: TransferOptions, tally: ChecksumTally | None = None
) -> TaskReport:
    """The report the worker's events carry: failed files (capped), checksum result, and
    for a dry run the plan (what would be transferred, skipped, refused).  ``tally``: the
    checksum counts taken from the sink when the report kept only failed outcomes
    (without it they are counted from ``report.outcomes``)."""
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    errors = [
        FileError(path=clip(o.src or o.dst), error=clip(_describe(o)), kind=o.kind or "other")
        for o in failed[:MAX_FILE_ERRORS]
    ]
    plan = _plan(report) if options.dry_run else None
    checksum: ChecksumResult | None = None
    agreed = 0
    if not options.dry_run:
        if tally is None:
            tally = ChecksumTally()
            for o in report.outcomes:
                tally.add(o)
        agreed = tally.agreed
        if any(o.kind == "checksum_mismatch" for o in failed):
            checksum = "mismatch"
        elif options.verify_checksum and agreed == tally.moved and not failed:
            checksum = "verified"
        else:
            checksum = "not_verified"
    return TaskReport(
        file_errors=errors,
        file_errors_total=len(failed),
        checksum=checksum,
        checksum_files=agreed,
        plan=plan,
    )


def _plan(report: TransferReport) -> PlanSummary:
    counts: dict[PlanAction, list[int]] = {
        a: [0, 0] for a in ("transfer", "skip", "conflict", "fail")
    }
    entries: list[PlanEntry] = []
    for o in report.outcomes:
        action: PlanAction
        if o.outcome in ("dry-run", "transferred"):
            action, reason = "transfer", None
        elif o.outcome == "skipped":
            action, reason = "skip", o.reason
        elif o.kind == "name_taken":
            action, reason = "conflict", o.error
        else:
            action, reason = "fail", o.error
        counts[action][0] += 1
        counts[action][1] += o.bytes
        if len(entries) < MAX_PLAN_ENTRIES:
            entries.append(
                PlanEntry(
                    src=clip(o.src),
                    dst=clip(o.dst),
                    action=action,
                    size=o.bytes,
                    reason=clip(reason) if reason else None,
                )
            )
    return PlanSummary(
        transfer_files=counts["transfer"][0],
        transfer_bytes=counts["transfer"][1],
        skip_files=counts["skip"][0],
        skip_bytes=counts["skip"][1],
        conflict_files=counts["conflict"][0],
        fail_files=counts["fail"][0],
        entries=entries,
        entries_total=len(report.outcomes),
    )


def _session_for(account: IrodsAccount) -> Any:
    """The session of ``account``, opened by this child's first task and kept."""
    global _session
    secret = account.password.get_secret_value()
    digest = hashlib.sha256(f"{account.model_dump_json()}\0{secret}".encode()).hexdigest()
    if _session is not None and _session[0] == digest:
        return _session[1]
    _close_session()
    opened = open_session(account)
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


def _irods_side(params: Mapping[str, Any], home: str) -> str | None:
    """The task's iRODS path (its destination for a put, its source for a get)."""
    from services.isync.paths import is_irods, parse_location

    url = params["dst"] if is_irods(params["dst"]) else params["src"]
    return parse_location(url, home).path if is_irods(url) else None


def _describe(outcome: FileOutcome) -> str:
    why = str(outcome.error or outcome.reason or "failed")
    return why if outcome.src in why else f"{outcome.src}: {why}"
