"""Local → iRODS for one file: small files on one pooled connection, large ones in ranges.

A large file is written under a temporary name (`.NAME.isync-part` beside the target),
verified, then renamed over the target, so an interrupted put never looks complete; its
completed ranges are journaled so a rerun sends only what is missing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from irods import keywords as kw

from services.isync import single_buffer, wire
from services.isync.context import Context
from services.isync.errors import ChecksumMismatch, DestinationExists
from services.isync.hashing import (
    ChasingHasher,
    checksum_of,
    file_checksum,
    remote_checksum,
    scheme_of,
    zone_scheme,
)
from services.isync.journal import Journal, put_journal_path
from services.isync.models import FileOutcome
from services.isync.paths import part_name
from services.isync.plan import FileTask
from services.isync.ranges import ByteRange, split
from services.isync.skip import unchanged
from services.isync.streams import StreamSet, run_ranges


def put_file(ctx: Context, task: FileTask) -> FileOutcome:
    """Copy one local file to iRODS (or skip it); raises on failure."""
    base: dict[str, Any] = {"src": task.src, "dst": task.dst, "bytes": task.size}
    if task.remote is not None:
        same, checksum = unchanged(
            ctx,
            task.src,
            task.size,
            task.dst,
            task.remote.size,
            task.remote.checksum,
            remote_mtime=task.remote.mtime,
            direction="put",
        )
        if same:
            ctx.tracker.add_bytes(task.size, 0)
            return FileOutcome(**base, outcome="skipped", reason="unchanged", checksum=checksum)
        if not ctx.options.force:
            raise DestinationExists(f"irods:{task.dst} exists and differs (use -f to overwrite)")
    if ctx.options.dry_run:
        ctx.tracker.add_bytes(task.size, 0)
        return FileOutcome(**base, outcome="dry-run")
    if task.size >= ctx.options.large_file_threshold:
        sent, checksum, resumed = _put_large(ctx, task)
    else:
        (sent, checksum), resumed = _put_small(ctx, task), False
    return FileOutcome(
        **base, outcome="transferred", bytes_sent=sent, checksum=checksum, resumed=resumed
    )


def _discard(ctx: Context, path: str) -> None:
    with contextlib.suppress(Exception):
        ctx.session.data_objects.unlink(path, force=True)


def _verify(ctx: Context, path: str, local: str, src: str) -> None:
    remote = remote_checksum(ctx.session, path)
    scheme = scheme_of(remote)
    if scheme is not None and scheme != scheme_of(local):  # the zone hashed in another scheme
        local = file_checksum(src, ctx.cancel.is_set, scheme)
    if remote != local:
        raise ChecksumMismatch(
            f"irods:{path}: checksum mismatch after upload (local {local}, iRODS {remote}):"
            f" {ChecksumMismatch.hint}"
        )


def _put_small(ctx: Context, task: FileTask) -> tuple[int, str | None]:
    """One request (606) when the server takes it, else open, write, close; with -K
    iRODS verifies the checksum we send before the object counts as good."""
    with open(task.src, "rb", buffering=0) as fh:
        data = memoryview(fh.read())  # at most the large-file threshold
    checksum = None
    if ctx.options.verify_checksum:
        checksum = checksum_of(data, zone_scheme(ctx.session))
    if ctx.single.applies(len(data)):
        try:
            _put_single(ctx, task, data, checksum)
            return len(data), checksum
        except single_buffer.Unsupported as e:
            ctx.single.disable(str(e))
        except _NotThisWay:
            pass
    return _put_opened(ctx, task, data, checksum), checksum


class _NotThisWay(Exception):
    """This one file cannot take the one-request way (the run keeps using it)."""


def _put_single(ctx: Context, task: FileTask, data: memoryview, checksum: str | None) -> None:
    """DATA_OBJ_PUT with the data; raises Unsupported when the server will not do it."""
    opts = ctx.resource_options()
    if ctx.options.force:
        opts[kw.FORCE_FLAG_KW] = ""
    ctx.check_cancel()
    ctx.bucket.acquire(len(data))
    try:
        with ctx.connection() as conn:
            single_buffer.put_object(conn, task.dst, data, opts, checksum)
    except BaseException as e:
        if single_buffer.is_unsupported(e):
            raise single_buffer.Unsupported(f"{type(e).__name__}") from e
        name = type(e).__name__
        if name == "HIERARCHY_ERROR":  # forced onto another resource: as open/write/close does
            raise _NotThisWay from e
        if name == "OVERWRITE_WITHOUT_FORCE_FLAG":  # someone else's object: leave it
            raise DestinationExists(
                f"irods:{task.dst} exists and differs (use -f to overwrite)"
            ) from e
        _discard(ctx, task.dst)  # iRODS keeps a failed put as a stale replica
        if name == "USER_CHKSUM_MISMATCH":
            raise ChecksumMismatch(
                f"irods:{task.dst}: checksum mismatch after upload: {ChecksumMismatch.hint}"
            ) from e
        raise
    ctx.single.count(put=True)
    ctx.tracker.add_bytes(len(data), current=task.src)


def _put_opened(ctx: Context, task: FileTask, data: memoryview, checksum: str | None) -> int:
    """open, write, close on one pooled connection; with -K iRODS verifies at close."""
    opts = {kw.DATA_SIZE_KW: str(task.size), **ctx.resource_options()}
    if checksum is not None:  # iRODS takes the expected value from verifyChksum (fillL1desc)
        opts[kw.VERIFY_CHKSUM_KW] = checksum
        opts[kw.CHKSUM_KW] = checksum
    step = ctx.options.buffer_size
    try:
        with ctx.connection() as conn:
            fd = wire.open_object(
                conn, task.dst, wire.O_WRONLY | wire.O_CREAT | wire.O_TRUNC, opts, len(data)
            )
            try:
                for pos in range(0, len(data), step):
                    ctx.check_cancel()
                    chunk = data[pos : pos + step]
                    ctx.bucket.acquire(len(chunk))
                    wire.write(conn, fd, chunk)
                    ctx.tracker.add_bytes(len(chunk), current=task.src)
            finally:
                wire.close(conn, fd)
    except BaseException as e:
        _discard(ctx, task.dst)
        if type(e).__name__ == "USER_CHKSUM_MISMATCH":
            raise ChecksumMismatch(
                f"irods:{task.dst}: checksum mismatch after upload: {ChecksumMismatch.hint}"
            ) from e
        raise
    return len(data)


def _put_large(ctx: Context, task: FileTask) -> tuple[int, str | None, bool]:
    opts = ctx.options
    tmp = part_name(task.dst, "irods")
    identity = {"dst": task.dst, "tmp": tmp, "size": task.size, "mtime_ns": task.mtime_ns}
    jpath = put_journal_path(ctx.state_dir, task.dst, task.size, task.mtime_ns)
    journal = Journal.load(jpath, identity)
    resumed = journal is not None and journal.bytes_done > 0
    base_opts = {kw.DATA_SIZE_KW: str(task.size), **ctx.resource_options()}
    if journal is None or not resumed:
        journal = Journal(jpath, identity, split(task.size, opts.streams))
    todo = [r for r in journal.ranges if not r.complete]
    already = task.size - sum(r.remaining for r in journal.ranges)
    # noted before the part object is made: a cancel or final failure removes both
    ctx.leftovers.note("irods_part", tmp)
    ctx.leftovers.note("file", str(jpath))
    streams = _open_streams(ctx, tmp, len(todo), resumed, base_opts, task.size)
    if streams is None:  # the partial object is gone: start over
        resumed, already = False, 0
        journal = Journal(jpath, identity, split(task.size, opts.streams))
        todo = list(journal.ranges)
        streams = _open_streams(ctx, tmp, len(todo), False, base_opts, task.size)
        assert streams is not None
    journal.save()
    ctx.tracker.add_bytes(already, 0)
    sent = [0]
    lock = threading.Lock()
    stop_hash = threading.Event()
    hasher = None
    local_fd = os.open(task.src, os.O_RDONLY)
    if opts.verify_checksum:
        whole = [ByteRange(0, task.size, task.size)]
        hasher = ChasingHasher(local_fd, whole, stop_hash, task.size, zone_scheme(ctx.session))
        hasher.start()

    def worker(conn: Any, fd: int, rng: ByteRange, stop: threading.Event) -> None:
        buf = ctx.buffer()
        zero_copy = wire.can_sendfile(conn)
        wire.seek(conn, fd, rng.next_offset)
        while not rng.complete:
            if stop.is_set():
                return
            ctx.check_cancel()
            want = min(len(buf), rng.remaining)
            ctx.bucket.acquire(want)
            if zero_copy:
                n = wire.write_from_file(conn, fd, local_fd, rng.next_offset, want)
            else:
                n = os.preadv(local_fd, [buf[:want]], rng.next_offset)
                if n <= 0:
                    raise OSError(f"{task.src} shrank during the transfer")
                n = wire.write(conn, fd, buf[:n])
            if n <= 0:
                raise OSError(f"irods:{tmp}: the server wrote nothing")
            journal.advance(rng, n)
            with lock:
                sent[0] += n
            ctx.tracker.add_bytes(n, current=task.src)

    run_ranges(streams, todo, worker, local_fd=local_fd, journal=journal, stop_hash=stop_hash)
    checksum = None
    if hasher is not None:
        checksum = hasher.wait()
        try:
            _verify(ctx, tmp, checksum, task.src)
        except ChecksumMismatch:
            _discard(ctx, tmp)
            journal.remove()
            raise
    if task.remote is not None:
        ctx.session.data_objects.unlink(task.dst, force=True)
    with ctx.connection() as conn:
        wire.rename_object(conn, tmp, task.dst)
    journal.remove()
    return sent[0], checksum, resumed


def _open_streams(
    ctx: Context, tmp: str, todo: int, resume: bool, opts: dict[str, str], size: int
) -> StreamSet | None:
    flags = wire.O_WRONLY if resume else wire.O_WRONLY | wire.O_CREAT | wire.O_TRUNC
    streams = StreamSet(ctx, tmp, todo, flags, opts, wire.O_WRONLY, size)
    try:
        streams.open()
    except Exception:
        streams.close(False)
        if resume:
            return None
        raise
    return streams
