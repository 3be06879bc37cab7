"""`transfer()`: plan, create directories, then copy files concurrently and report."""

from __future__ import annotations

import errno
import functools
import os
import queue
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Literal

from services.isync import bulk, get, put, wire
from services.isync.account import open_session
from services.isync.bwlimit import NoLimit, TokenBucket
from services.isync.context import Context
from services.isync.errors import (
    DestinationExists,
    Interrupted,
    IsyncError,
    UsageError,
    file_kind_of,
    translate,
)
from services.isync.journal import default_state_dir
from services.isync.leftovers import Ledger
from services.isync.models import FileOutcome, TransferOptions, TransferReport
from services.isync.paths import parse_location
from services.isync.plan import FileTask, Plan, plan_get, plan_put
from services.isync.progress import ProgressSink, ProgressTracker
from services.isync.single_buffer import SingleBuffer
from shared.errors import ExitStatus
from shared.irods import IrodsAccount


def transfer(
    src: str,
    dst: str,
    account: IrodsAccount,
    options: TransferOptions,
    sink: ProgressSink,
    cancel: threading.Event | None = None,
    session: Any = None,
    keep_outcomes: Literal["all", "failed"] = "all",
) -> TransferReport:
    """Copy `src` to `dst` (one of them `irods:`/`i:`); one bad file does not stop the rest.

    Whole-run failures (usage, authentication, missing source, permission on the source or
    destination root) raise an IsyncError; per-file failures are in the report.
    ``keep_outcomes="failed"``: the report's ``outcomes`` keep only failed files (the sink
    still sees every outcome), so a caller that tallies what it needs from the sink does
    not hold about 1.5 KB per file of a large tree.
    """
    src_loc, dst_loc = parse_location(src, account.home), parse_location(dst, account.home)
    if src_loc.is_irods == dst_loc.is_irods:
        raise UsageError("exactly one of SRC and DST must be an iRODS path (irods:/... or i:...)")
    cancel = cancel or threading.Event()
    own_session = session is None
    if own_session:
        session = open_session(account)
    tracker = ProgressTracker(sink, options.progress_interval)
    ctx = Context(
        session=session,
        options=options,
        tracker=tracker,
        cancel=cancel,
        state_dir=options.resume_dir or default_state_dir(),
        bucket=TokenBucket(options.bwlimit) if options.bwlimit else NoLimit(),
        single=SingleBuffer(options.single_buffer_max),
        bulk=bulk.Bulk(),
        leftovers=Ledger(options.leftovers),
    )
    try:
        try:
            plan = (plan_put if dst_loc.is_irods else plan_get)(session, src_loc, dst_loc, options)
        except Exception as e:
            raise translate(e, src_loc.display()) from e
        report = TransferReport(src=src_loc.display(), dst=dst_loc.display())
        record = functools.partial(_record, report, tracker, keep_all=keep_outcomes == "all")
        tracker.add_totals(len(plan.files) + len(plan.notes), sum(f.size for f in plan.files))
        for note in plan.notes:
            record(note)
        for note in _make_dirs(ctx, plan):
            record(note)
        _run(ctx, plan, report, record)
    finally:
        tracker.emit(force=True)
        if own_session:
            session.cleanup()
    report.elapsed = tracker.elapsed
    # what crossed the network, also for files cut short (their outcome counts nothing)
    report.bytes_sent = tracker.bytes_sent
    report.exit_status = int(_exit_status(report, plan, cancel))
    return report


def _make_dirs(ctx: Context, plan: Plan) -> list[FileOutcome]:
    """Create destination directories, parents first; the root failing is fatal.

    Any other directory that cannot be made fails on its own (one outcome), and so do the
    files below it, without being tried; the rest of the tree goes on.
    """
    failures: list[FileOutcome] = []
    if ctx.options.dry_run:
        return failures
    sep = "/" if plan.direction == "put" else os.sep
    failed: list[str] = []
    for i, path in enumerate(plan.dirs):
        if any(path.startswith(f + sep) for f in failed):
            continue  # below a directory already reported
        try:
            if plan.direction == "get":
                _make_local_dir(ctx, path)
            else:
                with ctx.connection() as conn:
                    made = wire.make_collection(conn, path)
                if made:  # only what this run made is removed if the job fails for good
                    ctx.leftovers.note("collection", path)
        except Exception as e:
            err = _clash(e, path, plan.direction, want_dir=True) or translate(e, path)
            if path == plan.root or (plan.root is None and i == 0):
                raise err from e
            failed.append(path)
            failures.append(
                FileOutcome(
                    src="",
                    dst=path,
                    outcome="failed",
                    error=str(err),
                    kind=err.file_kind,
                    exit_status=err.exit_status,
                )
            )
    if failed:
        keep: list[FileTask] = []
        for task in plan.files:
            parent = next((f for f in failed if task.dst.startswith(f + sep)), None)
            if parent is None:
                keep.append(task)
                continue
            put = plan.direction == "put"
            where = f"irods:{parent}" if put else parent
            what = task.src if put else f"irods:{task.src}"
            failures.append(
                FileOutcome(
                    src=task.src,
                    dst=task.dst,
                    outcome="failed",
                    bytes=task.size,
                    error=f"{what}: not copied: its directory {where} could not be made (see"
                    " that directory's error)",
                    kind="parent_failed",
                    exit_status=int(ExitStatus.FAILED),
                )
            )
        plan.files = keep
    return failures


def _make_local_dir(ctx: Context, path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, noting each directory it makes (not those that
    were there) so that a cancel or final failure removes them while they are empty."""
    missing: list[str] = []
    at = os.path.normpath(path)
    while not os.path.lexists(at):
        missing.append(at)
        parent = os.path.dirname(at)
        if parent == at:
            break
        at = parent
    if not missing and not os.path.isdir(at):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    for made in reversed(missing):
        try:
            os.mkdir(made)
        except FileExistsError:
            if not os.path.isdir(made):
                raise
            continue  # made meanwhile by someone else: not ours to remove
        ctx.leftovers.note("dir", made)


def _clash(e: BaseException, path: str, direction: str, want_dir: bool) -> IsyncError | None:
    """A name taken by the other kind of entry (an object where a collection must go, a
    file where a directory must go, or the reverse): what clashes and what to do."""
    name = type(e).__name__
    if direction == "put":
        if name == "CAT_NAME_EXISTS_AS_DATAOBJ":
            found, needed = "a data object", "a collection"
        elif name == "CAT_NAME_EXISTS_AS_COLLECTION":
            found, needed = "a collection", "a data object"
        else:
            return None
        where = f"irods:{path}"
    else:
        if not isinstance(e, FileExistsError | NotADirectoryError | IsADirectoryError):
            return None
        found, needed = ("a file", "a directory") if want_dir else ("a directory", "a file")
        where = path
    return DestinationExists(
        f"{where} is {found} but {needed} goes there: rename or remove it, "
        "or copy to another destination"
    )


def _one(ctx: Context, plan: Plan, task: FileTask) -> FileOutcome:
    action: Callable[[Context, FileTask], FileOutcome] = (
        put.put_file if plan.direction == "put" else get.get_file
    )
    try:
        ctx.check_cancel()
        return action(ctx, task)
    except BaseException as e:
        if ctx.cancel.is_set() or isinstance(e, KeyboardInterrupt):
            err: Exception = Interrupted(f"{task.src}: interrupted: {Interrupted.hint}")
        else:
            err = _clash(e, task.dst, plan.direction, want_dir=False) or translate(
                e, task.src if plan.direction == "put" else f"irods:{task.src}"
            )
        return FileOutcome(
            src=task.src,
            dst=task.dst,
            outcome="failed",
            bytes=task.size,
            error=str(err),
            kind=file_kind_of(err),
            exit_status=int(getattr(err, "exit_status", ExitStatus.FAILED)),
        )


def _run(
    ctx: Context, plan: Plan, report: TransferReport, record: Callable[[FileOutcome], None]
) -> None:
    """Large files one at a time (each already uses N streams), small ones `-p` at a time.

    Workers pull from shared iterators and push outcomes on a queue: O(files), unlike
    waiting on one future per file.
    """
    threshold = ctx.options.large_file_threshold
    outcomes: queue.SimpleQueue[FileOutcome] = queue.SimpleQueue()
    small = [t for t in plan.files if t.size < threshold]
    lanes: list[tuple[list[FileTask] | list[FileTask | list[FileTask]], int]] = [
        ([t for t in plan.files if t.size >= threshold], 1),
        # new small files in bundles of up to 50 (services.isync.bulk)
        (
            list(bulk.units(ctx, small)) if plan.direction == "put" else small,
            ctx.options.parallel_files,
        ),
    ]
    threads: list[threading.Thread] = []
    for tasks, width in lanes:
        source = iter(tasks)
        lock = threading.Lock()

        def work(
            source: Iterator[FileTask | list[FileTask]] = source, lock: threading.Lock = lock
        ) -> None:
            while not ctx.cancel.is_set():
                with lock:
                    task = next(source, None)
                if task is None:
                    return
                if isinstance(task, list):
                    for outcome in bulk.put_bundle(ctx, task, partial(_one, ctx, plan)):
                        outcomes.put(outcome)
                else:
                    outcomes.put(_one(ctx, plan, task))

        for i in range(min(width, len(tasks))):
            t = threading.Thread(target=work, name=f"isync-file-{len(threads)}-{i}", daemon=True)
            t.start()
            threads.append(t)
    seen: set[tuple[str, str]] = set()
    while any(t.is_alive() for t in threads) or not outcomes.empty():
        try:
            outcome = outcomes.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.add((outcome.src, outcome.dst))
        record(outcome)
    for t in threads:
        t.join()
    for task in plan.files:
        if (task.src, task.dst) not in seen:
            record(
                FileOutcome(
                    src=task.src,
                    dst=task.dst,
                    outcome="failed",
                    bytes=task.size,
                    error=f"{task.src}: not transferred (interrupted): {Interrupted.hint}",
                    kind="cancelled",
                    exit_status=int(ExitStatus.INTERRUPTED),
                ),
            )
    report.outcomes.sort(key=lambda o: (o.src, o.dst))


def _record(
    report: TransferReport, tracker: ProgressTracker, outcome: FileOutcome, *, keep_all: bool
) -> None:
    if keep_all or outcome.outcome == "failed":
        report.outcomes.append(outcome)
    report.files_total += 1
    report.bytes_total += outcome.bytes
    report.bytes_sent += outcome.bytes_sent
    if outcome.outcome == "failed":
        report.files_failed += 1
    elif outcome.outcome == "skipped":
        report.files_skipped += 1
    else:
        report.files_transferred += 1
    tracker.file_finished(outcome)


def _exit_status(report: TransferReport, plan: Plan, cancel: threading.Event) -> ExitStatus:
    if cancel.is_set():
        return ExitStatus.INTERRUPTED
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    if not failed:
        return ExitStatus.SUCCESS
    if plan.single_file and len(failed) == 1 and failed[0].exit_status in (3, 4, 5):
        return ExitStatus(failed[0].exit_status)
    return ExitStatus.FAILED
