"""Many small new files in one request: BULK_DATA_OBJ_PUT (689), as ``iput -b`` sends it.

A bundle is up to 50 consecutive files of the plan (``MAX_NUM_BULK_OPR_FILES``), of one
directory or of several, each new (no object at its destination when the run was
planned), no larger than 4 MiB (``MAX_BULK_OPR_FILE_SIZE``) nor than
``--single-buffer-max``, 32 MiB in all (``BULK_OPR_BUF_SIZE``). The request is a
``BulkOprInp_PI``: ``objPath`` = the files' nearest common collection (the server wants
``delete_object`` on it), a ``GenQueryOut_PI`` whose columns are each object's path (403),
its mode (421), its end offset in the byte stream (999998) and, with ``-K``, the ``sha2:``
(or md5) checksum the server must find (415, with ``verifyChksum`` in the keywords), then
the files' bytes concatenated as the byte stream. The server puts the files one after the
other as single-buffer puts and answers 0, or stops at the first failure with its error
(irods/irods ``server/api/src/rsBulkDataObjPut.cpp``).

After a failure one GenQuery per directory tells which files made it (a good replica
of the right size, in row order); the rest go the one-file way (``put.put_file``), so each
gets its own outcome and error exactly as without bundles, and a replica the failed
request left stale is removed first. A server without the API (``SYS_UNMATCHED_API_NUM``,
``SYS_NOT_SUPPORTED``), or one refusing it as a whole, switches bundles off for the rest of
the run (:class:`Bulk`) after the first try. iRODS 5 refuses ``forceFlag`` on a bulk put,
so an existing destination always goes the one-file way.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from irods import keywords as kw

from services.isync import wire

if TYPE_CHECKING:
    from services.isync.context import Context
    from services.isync.models import FileOutcome
    from services.isync.plan import FileTask

API = 689  # BULK_DATA_OBJ_PUT_AN (lib/api/include/irods/apiNumberData.h)
MAX_FILES = 50  # MAX_NUM_BULK_OPR_FILES
MAX_FILE_SIZE = 4 * 1024 * 1024  # MAX_BULK_OPR_FILE_SIZE
MAX_BYTES = 8 * MAX_FILE_SIZE  # BULK_OPR_BUF_SIZE
MAX_PATH = 1088  # MAX_NAME_LEN: the width of a path in the request
MAX_SQL_ATTR = 50  # the packing instruction's SqlResult_PI[MAX_SQL_ATTR]
COL_DATA_NAME, COL_D_DATA_CHECKSUM, COL_DATA_MODE, OFFSET_INX = 403, 415, 421, 999998
NAME_LEN = 64

#: Answers meaning "this server does not take bulk puts": switch them off for the run.
UNSUPPORTED = frozenset(
    {"SYS_UNMATCHED_API_NUM", "SYS_NOT_SUPPORTED", "USER_INCOMPATIBLE_PARAMS", "SYS_API_INPUT_ERR"}
)

#: Answers meaning "not for this user here": the rest of the run goes one file at a time.
#: ``CAT_NO_ROWS_FOUND`` is iRODS's answer without delete_object on the collection (a
#: single put needs only modify_object).
REFUSED = frozenset({"CAT_NO_ROWS_FOUND", "CAT_NO_ACCESS_PERMISSION", "SYS_NO_API_PRIV"})

_totals = {"bundles": 0, "files": 0, "recoveries": 0}
_totals_lock = threading.Lock()


def totals() -> dict[str, int]:
    """Process-wide counts of bundles sent, files they stored and failed bundles."""
    with _totals_lock:
        return dict(_totals)


def _add(what: str, n: int = 1) -> None:
    with _totals_lock:
        _totals[what] += n


@dataclass
class Bulk:
    """Per-run switch and counters of bundled puts."""

    enabled: bool = True
    bundles: int = 0
    files: int = 0
    reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, files: int) -> None:
        with self._lock:
            self.bundles += 1
            self.files += files
        _add("bundles")
        _add("files", files)

    def disable(self, reason: str) -> None:
        with self._lock:
            if self.enabled:
                self.enabled, self.reason = False, reason


def eligible(ctx: Context, task: FileTask) -> bool:
    """Whether ``task`` may travel in a bundle: new, small, not a dry run."""
    opts = ctx.options
    return (
        ctx.bulk.enabled
        and opts.bulk
        and not opts.dry_run
        and task.remote is None
        and task.size <= MAX_FILE_SIZE
        and task.size < opts.large_file_threshold
        and ctx.single.applies(task.size)
        and _fits(task.dst)
    )


def _fits(path: str) -> bool:
    """A path the request can carry: UTF-8 (a name that is not goes the one-file way, which
    reports it) and shorter than ``MAX_NAME_LEN``."""
    try:
        return len(path.encode()) < MAX_PATH
    except UnicodeEncodeError:
        return False


def units(ctx: Context, tasks: Iterable[FileTask]) -> Iterator[FileTask | list[FileTask]]:
    """``tasks`` as they come (the plan's depth-first order), runs of eligible files as
    bundles, across directories (a bundle of one is sent as a single file)."""
    run: list[FileTask] = []
    size = 0
    for task in tasks:
        if not eligible(ctx, task):
            yield task
            continue
        if run and (len(run) >= MAX_FILES or size + task.size > MAX_BYTES):
            yield run if len(run) > 1 else run[0]
            run, size = [], 0
        run.append(task)
        size += task.size
    if run:
        yield run if len(run) > 1 else run[0]


def _column(inx: int, width: int, values: list[str]) -> str:
    cells = "".join(f"<value>{escape(v, quote=False)}</value>" for v in values)
    return f"<SqlResult_PI><attriInx>{inx}</attriInx><reslen>{width}</reslen>{cells}</SqlResult_PI>"


def request_body(
    coll: str, files: list[tuple[str, int, int]], checksums: list[str] | None, opts: dict[str, str]
) -> bytes:
    """The ``BulkOprInp_PI`` of ``files`` (path, mode, size) in that order."""
    ends, end = [], 0
    for _, _, size in files:
        end += size
        ends.append(str(end))
    cols = [
        _column(COL_DATA_NAME, MAX_PATH, [p for p, _, _ in files]),
        _column(COL_DATA_MODE, NAME_LEN, [str(m) for _, m, _ in files]),
        _column(OFFSET_INX, NAME_LEN, ends),
    ]
    if checksums is not None:
        cols.append(_column(COL_D_DATA_CHECKSUM, NAME_LEN, checksums))
    empty = "<SqlResult_PI><attriInx>0</attriInx><reslen>0</reslen></SqlResult_PI>"
    attri = (
        f"<GenQueryOut_PI><rowCnt>{len(files)}</rowCnt><attriCnt>{len(cols)}</attriCnt>"
        f"<continueInx>0</continueInx><totalRowCount>0</totalRowCount>{''.join(cols)}"
        f"{empty * (MAX_SQL_ATTR - len(cols))}</GenQueryOut_PI>"
    )
    return (
        f"<BulkOprInp_PI><objPath>{escape(coll, quote=False)}</objPath>{attri}"
        f"{wire.kvp(opts)}</BulkOprInp_PI>"
    ).encode()


def send(
    conn: Any,
    coll: str,
    files: list[tuple[str, int, int]],
    data: memoryview,
    checksums: list[str] | None,
    opts: dict[str, str],
) -> None:
    """One BULK_DATA_OBJ_PUT; raises python-irodsclient's exception for an iRODS error."""
    wire.call_with_data(conn, API, request_body(coll, files, checksums, opts), data)


def put_bundle(
    ctx: Context, tasks: list[FileTask], one: Callable[[FileTask], FileOutcome]
) -> list[FileOutcome]:
    """Put ``tasks`` (new small files, in plan order) in one request; ``one`` puts a file
    the one-file way and returns its outcome (the engine's, with its error handling)."""
    from services.isync.hashing import checksum_of, zone_scheme

    if not ctx.bulk.enabled or ctx.cancel.is_set():
        return [one(t) for t in tasks]
    sent: list[FileTask] = []
    blobs: list[bytes] = []
    alone: list[FileTask] = []  # unreadable here: the one-file way reports why
    for task in tasks:
        try:
            with open(task.src, "rb", buffering=0) as fh:
                blob = fh.read(MAX_FILE_SIZE + 1)
        except OSError:
            alone.append(task)
            continue
        if len(blob) > MAX_FILE_SIZE:  # grew since planned
            alone.append(task)
            continue
        sent.append(task)
        blobs.append(blob)
    checksums = None
    if ctx.options.verify_checksum and sent:
        scheme = zone_scheme(ctx.session)
        checksums = [checksum_of(memoryview(b), scheme) for b in blobs]
    outcomes: list[FileOutcome] = []
    if len(sent) > 1:
        data = memoryview(b"".join(blobs))
        files = [(t.dst, _mode(t.src), len(b)) for t, b in zip(sent, blobs, strict=True)]
        opts = ctx.resource_options()
        if checksums is not None:
            opts[kw.VERIFY_CHKSUM_KW] = ""
        # the files' nearest common collection: the server makes missing parents per file
        # and wants delete_object on this one (their collections exist: made before)
        coll = posixpath.commonpath([posixpath.dirname(t.dst) for t in sent])
        failure: BaseException | None = None
        try:
            ctx.check_cancel()
            ctx.bucket.acquire(len(data))
            with ctx.connection() as conn:
                send(conn, coll, files, data, checksums, opts)
        except Exception as e:
            failure = e
        if failure is None:
            ctx.bulk.count(len(sent))
            for i, (task, blob) in enumerate(zip(sent, blobs, strict=True)):
                ctx.tracker.add_bytes(len(blob), current=task.src)
                outcomes.append(_done(task, len(blob), checksums[i] if checksums else None))
            sent = []
        else:
            name = type(failure).__name__
            if name in UNSUPPORTED or name in REFUSED:
                ctx.bulk.disable(name)
            if name in UNSUPPORTED:
                done = 0  # refused as a whole: nothing was stored
            else:
                _add("recoveries")
                done = _recover(ctx, sent, blobs)
            for i in range(done):
                task = sent[i]
                ctx.tracker.add_bytes(len(blobs[i]), current=task.src)
                outcomes.append(_done(task, len(blobs[i]), checksums[i] if checksums else None))
            sent = sent[done:]
    outcomes.extend(one(t) for t in sent + alone)
    return outcomes


def _done(task: FileTask, sent: int, checksum: str | None) -> FileOutcome:
    from services.isync.models import FileOutcome

    return FileOutcome(
        src=task.src,
        dst=task.dst,
        bytes=task.size,
        outcome="transferred",
        bytes_sent=sent,
        checksum=checksum,
    )


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o644


def _recover(ctx: Context, tasks: list[FileTask], blobs: list[bytes]) -> int:
    """How many of ``tasks`` (in row order) a failed bulk put stored, from one GenQuery per
    directory looked at; the replica the failing file left stale, if any, is removed so the
    one-file way can redo it."""
    from services.isync.catalog import RemoteObject, objects_in

    listed: dict[str, dict[str, RemoteObject]] = {}

    def lookup(path: str) -> RemoteObject | None:
        where = posixpath.dirname(path)
        if where not in listed:
            listed[where] = objects_in(ctx.session, where, recursive=False)
        return listed[where].get(path)

    done = 0
    try:
        for task, blob in zip(tasks, blobs, strict=True):
            obj = lookup(task.dst)
            if obj is None or not obj.good or obj.size != len(blob):
                break
            done += 1
        if done < len(tasks):
            obj = lookup(tasks[done].dst)
            if obj is not None and not obj.good:
                with contextlib.suppress(Exception):  # the one-file way reports what is wrong
                    ctx.session.data_objects.unlink(tasks[done].dst, force=True)
    except Exception:  # noqa: S110 - the catalog cannot be read: redo from the first unknown
        pass
    return done
